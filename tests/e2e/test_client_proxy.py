"""Issue 31 item 2, the client's part: token_client's HTTP transport goes through ``HTTP(S)_PROXY`` and
skips it for ``NO_PROXY``, as botocore does (Lambda invoke already goes through botocore)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3

from local.api_front import ApiFront, Identity
from local.stack import signing_session
from token_client import HttpTransport, TokenClient
from token_client.proxies import ProxyAwarePool, proxy_for

pytestmark = pytest.mark.e2e
API = "https://abc123.execute-api.eu-west-2.amazonaws.com/v1/token"


class ForwardProxy:
    """A plain forward proxy on loopback (absolute-form requests), counting what it carried."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        upstream = urllib3.PoolManager(retries=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _forward(self) -> None:
                proxy.seen.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                answer = upstream.request(self.command, self.path, body=body, headers=headers, timeout=10)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.data)))
                self.end_headers()
                self.wfile.write(answer.data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward  # the vendor's AWS calls come through too

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    yield proxy
    proxy.stop()


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_the_http_transport_goes_through_the_proxy_and_skips_it_for_no_proxy(
    front: ApiFront,
    reporting: Identity,
    forward_proxy: ForwardProxy,
    no_proxy_settings: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("http_proxy", forward_proxy.url)  # the local front is plain http on loopback
    client = TokenClient(HttpTransport(front.token_url, session=signing_session(reporting)))

    assert client.get_token("fr:idm:*").access_token
    carried = [path for path in forward_proxy.seen if path.startswith(front.token_url + "?")]
    assert len(carried) == 1

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fresh = TokenClient(HttpTransport(front.token_url, session=signing_session(reporting)))
    assert fresh.get_token("fr:idm:*").access_token
    assert [p for p in forward_proxy.seen if p.startswith(front.token_url + "?")] == carried  # direct


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_an_https_target_is_tunnelled_through_https_proxy(
    variable: str, no_proxy_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "user:p%40ss@squid.internal:3128")  # botocore: bare host means http://

    proxy, headers = proxy_for(API) or ("", {})
    manager = ProxyAwarePool(retries=False).manager_for(API)

    assert proxy == "http://user:p%40ss@squid.internal:3128"
    assert headers == {"Proxy-Authorization": "Basic dXNlcjpwQHNz"}  # user:p@ss
    assert isinstance(manager, urllib3.ProxyManager)
    assert manager.proxy is not None
    assert manager.proxy.host == "squid.internal"
    assert manager.proxy_headers == headers
    assert not manager.proxy_config.use_forwarding_for_https  # CONNECT, as botocore does by default


@pytest.mark.parametrize("no_proxy", [".amazonaws.com", "execute-api.eu-west-2.amazonaws.com", "*"])
def test_no_proxy_sends_the_target_direct(
    no_proxy: str, no_proxy_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://squid.internal:3128")
    monkeypatch.setenv("no_proxy", no_proxy)

    assert proxy_for(API) is None
    assert not isinstance(ProxyAwarePool().manager_for(API), urllib3.ProxyManager)
