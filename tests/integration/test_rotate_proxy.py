"""Issue 31 item 2 for ``aic-token rotate``: its calls to AIC's IDM API (with the administrator's token) go
through ``HTTPS_PROXY``/``HTTP_PROXY`` like every other HTTP call of token_client; behind an egress proxy
a direct connection fails."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from token_client.rotate import Idm


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    """A forward proxy stand-in that answers itself: it records the absolute-form request line."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            body = json.dumps({"_rev": "1", "jwks": json.dumps({"keys": []})}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_rotate_reaches_idm_through_the_egress_proxy(
    proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = proxy
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", url)
    # A port nothing listens on: reached only through the proxy.
    idm = Idm("http://localhost:9", "account-1", "admin-token")
    rev, keys = idm.read()
    assert (rev, keys) == ("1", [])
    assert seen == ["http://localhost:9/openidm/managed/svcacct/account-1"]
