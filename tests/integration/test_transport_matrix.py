"""Transport conformance: the real exchange code against token endpoints served by servers we did not write.

The production pool and deadline run 200 exchanges against each server. Every exchange must be served,
with exactly one request at the endpoint (a second request is a second token minted at AIC), and no retry
after a request was sent. A dripping endpoint must be cut off by the deadline, headers or body.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Recorder
from tests.integration.token_servers import Served, serve_gunicorn, serve_stdlib, serve_waitress
from token_vendor.assertion import Assertion
from token_vendor.bounded_http import endpoint_pool
from token_vendor.deadline import Deadline
from token_vendor.errors import UpstreamUnavailable
from token_vendor.token_endpoint import TokenEndpoint

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


@pytest.mark.parametrize("variant", ["drip-headers", "drip-body"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_dripping_endpoint_is_cut_off_by_the_deadline(variant: str, tls: bool, tmp_path: Path) -> None:
    # One byte every 50 ms: each read is quick, the whole answer would take 10 seconds or more.
    served_iter = serve_stdlib(variant, drip=0.05, tls_dir=tmp_path if tls else None)
    served = next(served_iter)
    try:
        options = {"ca_certs": served.ca_certs} if served.ca_certs else {}
        endpoint = TokenEndpoint(served.url, pool=endpoint_pool(**options), max_attempts=1)
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
