"""One HTTP request that ends by a deadline, whatever the server does: the token exchange and STS.

urllib3 gets per-request timeouts from the time left (its public API) and the body is read in chunks; a
watchdog (``watchdog.py``) shuts the connection's socket at the deadline, which bounds what per-read
timeouts cannot (a server that drips a byte per read). The pool's connection classes only register
themselves with the watchdog from ``connect()`` and ``request()``: nothing wraps the socket
(docs/decisions.md, "The exchange's deadline"). The watch keeps its own reference to the socket: when a
response will close its connection (HTTP/1.0, ``Connection: close``) http.client hands the socket to the
response and sets the connection's ``sock`` to None.

A pooled connection idle longer than ``MAX_IDLE_SECONDS`` is closed before reuse, well before a NAT
gateway forgets the flow (AWS's after 350 s; docs/decisions.md, "Stale pooled connections"). Proxies
(HTTPS_PROXY, NO_PROXY) and AWS_CA_BUNDLE are honoured with botocore's semantics (``settings.Egress``).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3
import urllib3.connection
from urllib3.util.ssl_match_hostname import CertificateError

from token_vendor.adapters.http.watchdog import Watchdog, shut_down
from token_vendor.kernel import snapshot
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import NoAnswer as NoAnswer  # noqa: PLC0414  (re-exported: callers catch bounded_http.NoAnswer)
from token_vendor.kernel.settings import Egress

# Well below the 350 s after which AWS's NAT gateway forgets an idle flow (and below the idle timeouts of
# common proxies and load balancers: nginx 75 s, squid 120 s ... ALB 60 s is equal, and harmless).
MAX_IDLE_SECONDS = 55.0


class _Socket:
    """The socket of the connection a request runs on, kept for the watchdog (http.client may drop it)."""

    sock: socket.socket | None = None


class _Current(threading.local):
    """The request running on this thread: its deadline, its watchdog ticket, the socket being watched,
    and whether its request began to leave (a failure before that is not "sent")."""

    deadline: Deadline | None = None
    ticket: int | None = None
    held: _Socket | None = None
    started = False


_current = _Current()
_WATCHDOG = Watchdog()
snapshot.after_restore(_WATCHDOG.restart)  # its thread is not in a copy of the process


def _watch(connection: urllib3.connection.HTTPConnection) -> None:
    deadline = _current.deadline
    if deadline is None or _current.ticket is not None:
        return
    at = time.monotonic() + deadline.remaining()
    held = _current.held = _Socket()
    _current.ticket = _WATCHDOG.watch(at, lambda: shut_down(connection.sock or held.sock))


def _hold(connection: urllib3.connection.HTTPConnection) -> None:
    if _current.held is not None and connection.sock is not None:
        _current.held.sock = connection.sock


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """A connection the watchdog shuts at the request's deadline, from its connect or first request."""

    idle_clock: Callable[[], float] = staticmethod(time.monotonic)
    last_used: float | None = None

    def connect(self) -> None:
        _watch(self)
        super().connect()
        _hold(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        if self.sock is None:  # connect first: a failure to connect is not a request sent
            self.connect()
        _hold(self)
        _current.started = True
        self.last_used = self.idle_clock()
        super().request(*args, **kwargs)

    def idle_for(self) -> float:
        return 0.0 if self.last_used is None else self.idle_clock() - self.last_used


class _WatchedHTTPSConnection(_WatchedHTTPConnection, urllib3.connection.HTTPSConnection):
    """The same over TLS (the MRO puts urllib3's HTTPS connect between the watch and the socket)."""


class _IdleBound:
    """Closes a pooled connection idle too long before it is reused (it reconnects, nothing is sent)."""

    max_idle = MAX_IDLE_SECONDS

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        if isinstance(conn, _WatchedHTTPConnection) and conn.idle_for() > self.max_idle:
            conn.close()
        return conn


class _WatchedHTTPPool(_IdleBound, urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(_IdleBound, urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def proxy_for(url: str, proxies: Mapping[str, str]) -> str | None:
    """The proxy a request to ``url`` goes through, as botocore decides (``utils.get_environ_proxies``)."""
    parts = urlsplit(url)
    # urllib.request's own NO_PROXY matching, which botocore uses (not in typeshed, present since 3.0)
    if urllib.request.proxy_bypass_environment(parts.netloc, dict(proxies)):  # type: ignore[attr-defined]
        return None
    return proxies.get(parts.scheme)


class _EgressPoolManager(urllib3.PoolManager):
    """Direct pools, and a ``ProxyManager`` (CONNECT for https) per proxy a URL is routed through."""

    def __init__(self, proxies: Mapping[str, str], classes: dict[str, Any], **options: Any) -> None:
        super().__init__(**options)
        self.pool_classes_by_scheme = classes
        self._proxies, self._classes, self._options = dict(proxies), classes, options
        self._via: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
        proxy = proxy_for(url, self._proxies)
        if proxy is None:
            return super().urlopen(method, url, redirect, **kw)
        return self._through(proxy).urlopen(method, url, redirect, **kw)

    def renew(self) -> None:
        """In a copy of the process (a fork, a SnapStart restore): close every pooled connection, direct
        or through a proxy, and take a lock of this process (another thread may have held the old one)."""
        self._lock = threading.Lock()
        self.clear()
        for manager in self._via.values():
            manager.clear()

    def _through(self, proxy: str) -> urllib3.ProxyManager:
        with self._lock:
            if proxy not in self._via:
                auth = urlsplit(proxy)
                headers = None
                if auth.username is not None:  # botocore's proxy_headers_for: basic auth from the URL
                    credentials = f"{unquote(auth.username)}:{unquote(auth.password or '')}"
                    headers = urllib3.make_headers(proxy_basic_auth=credentials)
                manager = urllib3.ProxyManager(proxy, proxy_headers=headers, **self._options)
                manager.pool_classes_by_scheme = self._classes
                self._via[proxy] = manager
            return self._via[proxy]


def endpoint_pool(
    egress: Egress | None = None,
    *,
    max_idle: float = MAX_IDLE_SECONDS,
    idle_clock: Callable[[], float] = time.monotonic,
    **options: Any,
) -> urllib3.PoolManager:
    """One pool per execution environment (keeps TLS warm), whose connections end at the deadline, are
    not reused once idle for ``max_idle``, and go through the egress proxy and CA bundle of ``egress``."""
    egress = egress or Egress()
    if egress.ca_bundle is not None:
        options.setdefault("ca_certs", egress.ca_bundle)
    bound = {"max_idle": max_idle}
    clock = {"idle_clock": staticmethod(idle_clock)}
    http_conn = type("Connection", (_WatchedHTTPConnection,), clock)
    https_conn = type("TLSConnection", (_WatchedHTTPSConnection,), clock)
    classes = {
        "http": type("Pool", (_WatchedHTTPPool,), {"ConnectionCls": http_conn, **bound}),
        "https": type("TLSPool", (_WatchedHTTPSPool,), {"ConnectionCls": https_conn, **bound}),
    }
    options = {"num_pools": 2, "maxsize": 4, "retries": False, **options}
    manager = _EgressPoolManager(egress.proxies, classes, **options)
    snapshot.after_restore(manager.renew)  # a copy of the process never reuses this one's connections
    return manager


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes  # at most max_body + 1 bytes: one more says "too long"


def post(
    pool: urllib3.PoolManager,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    deadline: Deadline,
    *,
    connect_timeout: float,
    read_timeout: float,
    max_body: int,
) -> Answer:
    """POST ``body`` and read the whole answer by ``deadline``, or raise ``NoAnswer``."""
    remaining = deadline.remaining()
    timeout = urllib3.Timeout(connect=min(connect_timeout, remaining), read=min(read_timeout, remaining))
    _current.deadline, _current.ticket, _current.held, _current.started = deadline, None, None, False
    answered = False
    try:
        response = pool.request(
            "POST",
            url,
            body=body,
            headers=dict(headers),
            timeout=timeout,
            retries=False,
            redirect=False,
            preload_content=False,
        )
        answered = True
        data = _read_body(response, max_body)
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise _no_answer(exc, url, deadline, sent=_current.started) from exc
    finally:
        ticket, _current.deadline, _current.ticket, _current.held = _current.ticket, None, None, None
        in_time = ticket is None or _WATCHDOG.release(ticket)
        if answered:
            response.release_conn()  # a connection the watchdog shut is discarded by the pool on reuse
    if not in_time:  # shut at the deadline: what was read may be cut short
        raise NoAnswer("no complete answer within the time left", sent=True)
    return Answer(response.status, response.headers, data)


def _no_answer(exc: BaseException, url: str, deadline: Deadline, *, sent: bool) -> NoAnswer:
    """What a failure means: ``sent`` once the request began to leave (the server may have acted on it)."""
    host = _host(url)
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return NoAnswer(f"host {host} does not resolve", sent=False, unresolved=True)
    unverified = _certificate_failure(exc)
    if unverified is not None:
        return NoAnswer(
            f"TLS with {host}: certificate verify failed ({unverified})", sent=False, certificate=True
        )
    if not sent:
        if isinstance(exc, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            exc, urllib3.exceptions.NewConnectionError
        ):
            return NoAnswer(f"connecting to {host} timed out", sent=False)
        if deadline.remaining() <= 0:
            return NoAnswer("no connection within the time left", sent=False)
        return NoAnswer(f"connection to {host} failed ({type(exc).__name__})", sent=False)
    if deadline.remaining() <= 0:
        return NoAnswer("no complete answer within the time left", sent=True)
    if isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return NoAnswer(f"timed out ({type(exc).__name__})", sent=True)
    return NoAnswer(f"connection failed ({type(exc).__name__})", sent=True)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, what it wraps (urllib3 keeps the original in ``args`` or ``reason``) and its causes."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 16:
        item = todo.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [a for a in (*item.args, getattr(item, "reason", None)) if isinstance(a, BaseException)]
        todo += [c for c in (item.__cause__, item.__context__) if c is not None]
    return seen


def _certificate_failure(exc: BaseException) -> str | None:
    """The reason the server's certificate was refused, or None (OpenSSL's words: no secret in them)."""
    for item in _causes(exc):
        if isinstance(item, ssl.SSLCertVerificationError):
            return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in str(item.verify_message))[:120]
        if isinstance(item, CertificateError):  # urllib3's own host name check
            return "host name mismatch"
    return None


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


def _read_body(response: urllib3.BaseHTTPResponse, limit: int) -> bytes:
    """The body in chunks (plain, chunked or read to close), at most one byte past the limit."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = response.read(min(16384, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
