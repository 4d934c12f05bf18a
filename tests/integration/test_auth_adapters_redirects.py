"""The ``auth=`` adapters never hand a token to a host the caller did not address: a resource server that
redirects to another host, which then answers 401, must not receive the replacement token (requests strips
the header on a cross-host redirect; the adapter's 401 retry must not put it back)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests

from token_client.httpx_auth import VendorAuth as HttpxAuth
from token_client.requests_auth import VendorAuth as RequestsAuth

TOKEN = "eyJ.first-token.sig"
FRESH = "eyJ.fresh-token.sig"


class _Token:
    def __init__(self, access_token: str) -> None:
        self.access_token = access_token


class _Client:
    """The part of TokenClient the adapters use, counting reports."""

    def __init__(self) -> None:
        self.reports: list[str] = []

    def authorization_header(self, scope: Any, *, min_validity: int | None = None) -> str:
        return f"Bearer {TOKEN}"

    def get_token(self, scope: Any, *, min_validity: int | None = None) -> _Token:
        return _Token(TOKEN)

    def retire(self, scope: Any, rejected: Any, *, min_validity: int | None = None) -> _Token:
        self.reports.append(getattr(rejected, "access_token", rejected))
        return _Token(FRESH)


def _server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def other_host() -> Iterator[tuple[str, list[str]]]:
    """A server reached as ``localhost`` (another host than 127.0.0.1) that answers 401 to everything."""
    seen: list[str] = []

    class Refuses(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

    for server in _server(Refuses):
        yield f"http://localhost:{server.server_address[1]}/elsewhere", seen


@pytest.fixture
def redirecting(other_host: tuple[str, list[str]]) -> Iterator[str]:
    target = other_host[0]

    class Redirects(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    for server in _server(Redirects):
        yield f"http://127.0.0.1:{server.server_address[1]}/resource"


def test_requests_auth_sends_no_token_to_a_host_it_was_redirected_to(
    redirecting: str, other_host: tuple[str, list[str]]
) -> None:
    client = _Client()
    response = requests.get(redirecting, auth=RequestsAuth(client, "fr:idm:*"), timeout=5)  # type: ignore[arg-type]
    assert response.status_code == 401
    assert all(TOKEN not in h and FRESH not in h for h in other_host[1]), other_host[1]
    assert client.reports == []  # the other host never saw our token: nothing of ours was rejected


def test_httpx_auth_sends_no_token_to_a_host_it_was_redirected_to(
    redirecting: str, other_host: tuple[str, list[str]]
) -> None:
    client = _Client()
    with httpx.Client(auth=HttpxAuth(client, "fr:idm:*"), follow_redirects=True, timeout=5) as http:  # type: ignore[arg-type]
        response = http.get(redirecting)
    assert response.status_code == 401
    assert all(TOKEN not in h and FRESH not in h for h in other_host[1]), other_host[1]
