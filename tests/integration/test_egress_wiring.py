"""Issue 31: the runtime builds the exchange's and STS's pools from HTTPS_PROXY / HTTP_PROXY / NO_PROXY."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.unit.test_runtime import VALID, lambda_like_credentials  # noqa: F401 - the fixture
from token_vendor.wiring import Runtime

pytestmark = pytest.mark.integration


class _Proxy(BaseHTTPRequestHandler):
    seen: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(self.path)  # a forwarding proxy receives the absolute URL
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("P", (_Proxy,), {"seen": seen}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_the_exchange_and_sts_pools_go_through_the_proxy(proxy: tuple[str, list[str]]) -> None:
    url, seen = proxy
    runtime = Runtime({**VALID, "HTTP_PROXY": url, "NO_PROXY": "example.com"})
    pools = [runtime.vendor().minter._endpoint._pool, runtime.proof_verifier()._pool]  # type: ignore[attr-defined]
    for pool in pools:
        pool.request("POST", "http://127.0.0.1:9/am/oauth2/access_token", body=b"x", retries=False)
    assert seen == ["http://127.0.0.1:9/am/oauth2/access_token"] * 2
