"""Transport conformance: the real exchange code against token endpoints served by servers we did not write.

The production pool and deadline run 200 exchanges against each server. Every exchange must be served,
with exactly one request at the endpoint (a second request is a second token minted at AIC), and no retry
after a request was sent. A dripping endpoint must be cut off by the deadline, headers or body.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Recorder
from tests.integration.middleboxes import (
    NatRelay,
    binary,
    free_port,
    haproxy_config,
    nginx_config,
    run,
    squid_config,
)
from tests.integration.token_servers import (
    TOKEN_PATH,
    Served,
    self_signed_certificate,
    serve_gunicorn,
    serve_stdlib,
    serve_waitress,
)
from token_vendor.adapters.aic.assertion import Assertion
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.http.bounded_http import endpoint_pool
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import UpstreamUnavailable
from token_vendor.kernel.settings import load_egress

pytestmark = pytest.mark.integration

EXCHANGES = 200


def _sign() -> Assertion:
    return Assertion(jwt="header.claims.signature", jti=uuid.uuid4().hex)


def _servers(tmp: Path) -> dict[str, Callable[[], Iterator[Served]]]:
    return {
        "http.server HTTP/1.0": lambda: serve_stdlib("keepalive", http10=True),
        "http.server HTTP/1.1 keep-alive": lambda: serve_stdlib("keepalive"),
        "http.server Connection: close": lambda: serve_stdlib("connection-close"),
        "http.server headers and body in separate writes": lambda: serve_stdlib("split-writes"),
        "http.server chunked body": lambda: serve_stdlib("chunked"),
        "http.server TLS, HTTP/1.0": lambda: serve_stdlib("keepalive", http10=True, tls_dir=tmp),
        "http.server TLS, keep-alive, separate writes": lambda: serve_stdlib("split-writes", tls_dir=tmp),
        "waitress": serve_waitress,
        "gunicorn (sync worker)": serve_gunicorn,
    }


SERVERS = list(_servers(Path()))


@pytest.mark.parametrize("server", SERVERS)
def test_every_exchange_is_served_with_one_request(server: str, tmp_path: Path) -> None:
    with _start(server, tmp_path) as served:
        metrics = Recorder()
        options = {"ca_certs": served.ca_certs} if served.ca_certs else {}
        endpoint = TokenEndpoint(served.url, pool=endpoint_pool(**options), metrics=metrics)
        failures: list[str] = []
        tokens = set()
        for _ in range(EXCHANGES):
            try:
                issued = endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(5, time.monotonic))
            except UpstreamUnavailable as exc:
                failures.append(exc.message)
                continue
            tokens.add(issued.access_token)
            assert issued.attempts == 1
        requests = served.count()

    assert failures == [], f"{len(failures)} of {EXCHANGES} failed: {failures[:3]}"
    assert requests == EXCHANGES  # one token minted at AIC per exchange, no more
    assert len(tokens) == EXCHANGES
    assert metrics.counts.get("ExchangeRetriedAfterSend", 0) == 0


class _start:
    """Starts one matrix server for a ``with`` block and stops it after."""

    def __init__(self, server: str, tmp: Path) -> None:
        self._iterator = _servers(tmp)[server]()

    def __enter__(self) -> Served:
        return next(self._iterator)

    def __exit__(self, *exc: object) -> None:
        self._iterator.close()


FRAMINGS = {
    "keep-alive": {"framing": "length"},
    "HTTP/1.0": {"framing": "length", "http10": True},
    "Connection: close": {"framing": "close"},
    "chunked": {"framing": "chunked"},
}


@pytest.mark.parametrize(
    ("variant", "framing"),
    [("drip-headers", "keep-alive")] + [("drip-body", framing) for framing in FRAMINGS],
    ids=["drip-headers"] + [f"drip-body, {framing}" for framing in FRAMINGS],
)
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_dripping_endpoint_is_cut_off_by_the_deadline(
    variant: str, framing: str, tls: bool, tmp_path: Path
) -> None:
    # One byte every 10 ms: each read is quick, the whole answer would take 13 seconds or more. When the
    # answer will close its connection (HTTP/1.0, Connection: close), http.client hands the socket to the
    # response: the watchdog must still find it.
    options: dict[str, Any] = dict(FRAMINGS[framing])
    served_iter = serve_stdlib(variant, drip=0.01, tls_dir=tmp_path if tls else None, **options)
    served = next(served_iter)
    try:
        pool_options = {"ca_certs": served.ca_certs} if served.ca_certs else {}
        endpoint = TokenEndpoint(served.url, pool=endpoint_pool(**pool_options), max_attempts=1)
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable, match="no complete answer within the time left"):
            endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(1.0, time.monotonic))
        elapsed = time.monotonic() - started
    finally:
        served_iter.close()
    assert elapsed < 1.5


def test_a_request_that_may_have_been_processed_is_retried_only_when_counted(tmp_path: Path) -> None:
    # The endpoint reads the request and drops the connection: AIC may have minted, so the retry is counted.
    served_iter = serve_stdlib("drop-after-read")
    served = next(served_iter)
    try:
        metrics = Recorder()
        endpoint = TokenEndpoint(served.url, pool=endpoint_pool(), metrics=metrics, sleep=lambda s: None)
        with pytest.raises(UpstreamUnavailable):
            endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(5, time.monotonic))
        requests = served.count()
    finally:
        served_iter.close()
    assert requests == 3
    assert metrics.counts["ExchangeRetriedAfterSend"] == 2


# --- What stands between a Lambda and AIC (issue 31) ----------------------------------------------------


@dataclass
class Figures:
    """One case's figures: what the matrix reports, before and after a change."""

    vends: int = 0
    failures: list[str] = field(default_factory=list)
    requests: int = 0
    retried_after_send: float = 0
    slowest: float = 0.0

    def line(self, case: str) -> str:
        per_mint = self.requests / max(1, self.vends)
        return (
            f"{case}: {self.vends} vends served, {len(self.failures)} failed, {per_mint:.2f} requests per"
            f" mint, {self.retried_after_send:g} retries after send, slowest {self.slowest:.2f} s"
        )


def _exchanges(
    endpoint: TokenEndpoint, count: int, metrics: Recorder, before_each: Callable[[int], None]
) -> Figures:
    figures = Figures()
    for number in range(count):
        before_each(number)
        started = time.monotonic()
        try:
            endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(4, time.monotonic))
            figures.vends += 1
        except UpstreamUnavailable as exc:
            figures.failures.append(exc.message)
        figures.slowest = max(figures.slowest, time.monotonic() - started)
    figures.retried_after_send = metrics.counts.get("ExchangeRetriedAfterSend", 0)
    return figures


def _served_cleanly(figures: Figures, case: str, count: int, requests: int) -> None:
    figures.requests = requests
    print(figures.line(case))  # the matrix's figures (pytest -s shows them)
    assert figures.failures == [], f"{len(figures.failures)} of {count} failed: {figures.failures[:3]}"
    assert figures.vends == count
    assert requests == count  # one token minted at AIC per vend, no more
    assert figures.retried_after_send == 0
    assert figures.slowest < 2.0  # within the deadline, and no read timeout waited out


def _need(name: str) -> None:
    if binary(name) is None:
        print(f"SKIPPED: {name} is not installed (apt-get install {name}; .ci/run does)")
        pytest.skip(f"{name} is not installed (apt-get install {name}; .ci/run does)")


@pytest.mark.parametrize("mode", ["drop", "reset"])
def test_a_nat_gateway_that_forgot_an_idle_flow_costs_no_retry(mode: str) -> None:
    # A container mints about every ten minutes; AWS's NAT gateway forgets a flow idle 350 s, telling no
    # one. The idle clock is injected: each mint comes 600 s after the last, and the relay forgets at once.
    served_iter = serve_stdlib("keepalive")
    served = next(served_iter)
    port = int(served.url.split(":")[2].split("/")[0])
    relay = NatRelay(("127.0.0.1", port))
    idle = [0.0]
    try:
        metrics = Recorder()
        pool = endpoint_pool(idle_clock=lambda: idle[0])
        url = served.url.replace(f":{port}/", f":{relay.address[1]}/")
        endpoint = TokenEndpoint(url, pool=pool, metrics=metrics, read_timeout=1.0, sleep=lambda s: None)

        def ten_minutes_later(number: int) -> None:
            if number:
                idle[0] += 600
                relay.forget(mode)

        figures = _exchanges(endpoint, 8, metrics, ten_minutes_later)
        _served_cleanly(figures, f"NAT-like relay ({mode})", 8, served.count())
        flows = relay.flows_opened
        idle[0] += 10  # a connection idle less than the bound is reused (TLS stays warm)
        endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(4, time.monotonic))
        assert relay.flows_opened == flows
    finally:
        relay.close()
        served_iter.close()


def test_a_certificate_that_is_not_trusted_is_not_sent_nor_retried(tmp_path: Path) -> None:
    served_iter = serve_stdlib("keepalive", tls_dir=tmp_path)  # a private CA nobody told the pool about
    served = next(served_iter)
    slept: list[float] = []
    try:
        metrics = Recorder()
        endpoint = TokenEndpoint(served.url, pool=endpoint_pool(), metrics=metrics, sleep=slept.append)
        with pytest.raises(UpstreamUnavailable, match="certificate verify failed") as caught:
            endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(4, time.monotonic))
        requests = served.count()
    finally:
        served_iter.close()
    assert "AWS_CA_BUNDLE" in caught.value.message
    assert requests == 0
    assert slept == []  # not retried: the next attempt meets the same certificate
    assert metrics.counts.get("ExchangeRetriedAfterSend", 0) == 0
    assert metrics.counts["ExchangeCertificateRefused"] == 1


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_squid_as_the_egress_proxy_sees_every_exchange(variable: str, tmp_path: Path) -> None:
    _need("squid")
    served_iter = serve_stdlib("keepalive", tls_dir=tmp_path)
    served = next(served_iter)
    proxy_port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix="squid-"))  # squid runs as its own user: not under pytest's 0700
    squid = run("squid", squid_config(scratch, proxy_port), scratch, proxy_port)
    try:
        next(squid)
        assert served.ca_certs is not None
        env = {variable: f"http://127.0.0.1:{proxy_port}", "AWS_CA_BUNDLE": served.ca_certs}
        metrics = Recorder()
        pool = endpoint_pool(load_egress(env))
        endpoint = TokenEndpoint(served.url, pool=pool, metrics=metrics)
        figures = _exchanges(endpoint, 10, metrics, lambda number: None)
        pool.clear()  # squid logs a tunnel when it closes
        requests = served.count()
    finally:
        squid.close()
        served_iter.close()
    _served_cleanly(figures, f"squid egress proxy ({variable})", 10, requests)
    log = (scratch / "access.log").read_text()
    shutil.rmtree(scratch, ignore_errors=True)
    target = served.url.split("/")[2]
    assert f"CONNECT {target}" in log  # the exchange went through the proxy, as botocore's calls do


def test_no_proxy_sends_a_listed_host_direct(tmp_path: Path) -> None:
    served_iter = serve_stdlib("keepalive")
    served = next(served_iter)
    try:
        # A proxy nobody listens on: only a bypassed host can be served.
        env = {
            "HTTPS_PROXY": f"http://127.0.0.1:{free_port()}",
            "HTTP_PROXY": f"http://127.0.0.1:{free_port()}",
        }
        endpoint = TokenEndpoint(
            served.url, pool=endpoint_pool(load_egress({**env, "NO_PROXY": "127.0.0.1"}))
        )
        endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(4, time.monotonic))
        proxied = TokenEndpoint(served.url, pool=endpoint_pool(load_egress(env)), max_attempts=1)
        with pytest.raises(UpstreamUnavailable):
            proxied.exchange(_sign, ("fr:idm:*",), Deadline.after(4, time.monotonic))
        requests = served.count()
    finally:
        served_iter.close()
    assert requests == 1


def _nginx(tmp_path: Path, slow_first: float = 0.0) -> Iterator[tuple[Served, Served]]:
    """nginx with TLS in front of a plain token endpoint: (what callers reach, the upstream)."""
    upstream_iter = serve_stdlib("keepalive", slow_first=slow_first)
    upstream = next(upstream_iter)
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    upstream_port = int(upstream.url.split(":")[2].split("/")[0])
    nginx = run("nginx", nginx_config(tmp_path, port, upstream_port, cert, key), tmp_path, port)
    try:
        next(nginx)
        yield Served(f"https://127.0.0.1:{port}{TOKEN_PATH}", upstream.count, str(cert)), upstream
    finally:
        nginx.close()
        upstream_iter.close()


def test_nginx_with_tls_closing_idle_and_used_connections(tmp_path: Path) -> None:
    # keepalive_timeout 1 s is shorter than the gap between some exchanges; keepalive_requests 5 closes
    # every fifth answer's connection. AWS_CA_BUNDLE is how the pool trusts nginx's private CA.
    _need("nginx")
    proxied = _nginx(tmp_path)
    front, upstream = next(proxied)
    try:
        assert front.ca_certs is not None
        metrics = Recorder()
        pool = endpoint_pool(load_egress({"AWS_CA_BUNDLE": front.ca_certs}))
        endpoint = TokenEndpoint(front.url, pool=pool, metrics=metrics)
        figures = _exchanges(
            endpoint, 12, metrics, lambda number: time.sleep(1.3) if number in (3, 8) else None
        )
        requests = upstream.count()
    finally:
        proxied.close()
    _served_cleanly(figures, "nginx TLS (keepalive_timeout 1 s, keepalive_requests 5)", 12, requests)


def test_a_gateway_timeout_is_counted_as_a_retry_after_send(tmp_path: Path) -> None:
    # proxy_read_timeout 1 s, and the first exchange takes AIC 1.5 s: AIC minted, nginx answered 504.
    _need("nginx")
    proxied = _nginx(tmp_path, slow_first=1.5)
    front, upstream = next(proxied)
    try:
        metrics = Recorder()
        pool = endpoint_pool(load_egress({"AWS_CA_BUNDLE": str(front.ca_certs)}))
        endpoint = TokenEndpoint(front.url, pool=pool, metrics=metrics, sleep=lambda s: None)
        issued = endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(4, time.monotonic))
        requests = upstream.count()
    finally:
        proxied.close()
    print(f"nginx 504 (proxy_read_timeout 1 s): 1 vend, {requests} requests, attempts {issued.attempts}")
    assert issued.attempts == 2
    assert requests == 2  # the token minted for the first request is lost: the metric says so
    assert metrics.counts["ExchangeRetriedAfterSend"] == 1


def test_haproxy_closing_idle_connections(tmp_path: Path) -> None:
    _need("haproxy")
    upstream_iter = serve_stdlib("keepalive")
    upstream = next(upstream_iter)
    port = free_port()
    upstream_port = int(upstream.url.split(":")[2].split("/")[0])
    haproxy = run("haproxy", haproxy_config(port, upstream_port), tmp_path, port)
    try:
        next(haproxy)
        metrics = Recorder()
        endpoint = TokenEndpoint(
            f"http://127.0.0.1:{port}{TOKEN_PATH}", pool=endpoint_pool(), metrics=metrics
        )
        figures = _exchanges(endpoint, 12, metrics, lambda number: time.sleep(1.3) if number == 6 else None)
        requests = upstream.count()
    finally:
        haproxy.close()
        upstream_iter.close()
    _served_cleanly(figures, "HAProxy (timeout http-keep-alive 1 s)", 12, requests)
