"""One HTTP request that ends by a deadline, whatever the server does: the token exchange and STS.

urllib3 gets per-request timeouts from the time left (its public API) and the body is read in chunks; a
watchdog (``watchdog.py``) shuts the connection's socket at the deadline, which bounds what per-read
timeouts cannot (a server that drips a byte per read). The pool's connection classes only register
themselves with the watchdog from ``connect()`` and ``request()``: nothing wraps the socket
(docs/decisions.md, "The exchange's deadline").
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
import urllib3.connection

from token_vendor.deadline import Deadline
from token_vendor.errors import NoAnswer as NoAnswer  # noqa: PLC0414  (re-exported: callers catch bounded_http.NoAnswer)
from token_vendor.watchdog import Watchdog, shut_down


class _Current(threading.local):
    """The request running on this thread: its deadline and the watchdog ticket of its connection."""

    deadline: Deadline | None = None
    ticket: int | None = None


_current = _Current()
_WATCHDOG = Watchdog()


def _watch(connection: urllib3.connection.HTTPConnection) -> None:
    deadline = _current.deadline
    if deadline is None or _current.ticket is not None:
        return
    at = time.monotonic() + deadline.remaining()
    _current.ticket = _WATCHDOG.watch(at, lambda: shut_down(connection.sock))


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """A connection the watchdog shuts at the request's deadline, from its connect or first request."""

    def connect(self) -> None:
        _watch(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, urllib3.connection.HTTPSConnection):
    """The same over TLS (the MRO puts urllib3's HTTPS connect between the watch and the socket)."""


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def endpoint_pool(**options: Any) -> urllib3.PoolManager:
    """One pool per execution environment (keeps TLS warm), whose connections end at the deadline."""
    manager = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False, **options)
    manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
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
    _current.deadline, _current.ticket = deadline, None
    sent = False
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
        sent = True
        data = _read_body(response, max_body)
    except urllib3.exceptions.NameResolutionError as exc:
        raise NoAnswer(f"host {_host(url)} does not resolve", sent=False, unresolved=True) from exc
    except urllib3.exceptions.NewConnectionError as exc:  # a subclass of the timeout error in urllib3 2
        raise NoAnswer(f"connection to {_host(url)} failed ({type(exc).__name__})", sent=False) from exc
    except urllib3.exceptions.ConnectTimeoutError as exc:
        raise NoAnswer(f"connecting to {_host(url)} timed out", sent=False) from exc
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        # The request left (or was leaving): the server may have acted on it.
        if deadline.remaining() <= 0:
            raise NoAnswer("no complete answer within the time left", sent=True) from exc
        if isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)):
            raise NoAnswer(f"timed out ({type(exc).__name__})", sent=True) from exc
        raise NoAnswer(f"connection failed ({type(exc).__name__})", sent=True) from exc
    finally:
        ticket, _current.deadline, _current.ticket = _current.ticket, None, None
        in_time = ticket is None or _WATCHDOG.release(ticket)
        if sent:
            response.release_conn()  # a connection the watchdog shut is discarded by the pool on reuse
    if not in_time:  # shut at the deadline: what was read may be cut short
        raise NoAnswer("no complete answer within the time left", sent=True)
    return Answer(response.status, response.headers, data)


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
