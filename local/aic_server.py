"""The stand-in's HTTP part: one loopback server routing to the token endpoint, IDM and the svcacct object.

``POST TOKEN_PATH`` records the assertion, acts out the next fault (``local/aic_faults.py``) and otherwise
answers through the grant (``local/aic_grant.py``); ``GET USERS_PATH`` is IDM (``local/aic_idm.py``);
``GET/PUT/PATCH SVCACCT_PATH<id>`` is the service account object (``local/svcacct_standin.py``).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.aic_faults import act_out
from local.aic_grant import TOKEN_PATH, StandInServer, StandInState
from local.aic_idm import USERS_PATH, users_answer
from local.quiet_server import QuietThreadingHTTPServer
from local.svcacct_standin import ServiceAccountObjects

SVCACCT_PATH = "/openidm/managed/svcacct/"  # + the account id: AIC's service account managed object
_NOT_FOUND = b'{"code":404,"reason":"Not Found"}'


class StandInHTTPServer(QuietThreadingHTTPServer):
    """The server and the parts its handler answers from, passed in."""

    def __init__(
        self,
        address: tuple[str, int],
        state: StandInState,
        oauth: StandInServer,
        svcacct: ServiceAccountObjects,
    ) -> None:
        super().__init__(address, StandInHandler)
        self.state = state
        self.oauth = oauth
        self.svcacct = svcacct


class StandInHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stalls
    server: StandInHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
        return None

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        if urlsplit(self.path).path != TOKEN_PATH:
            self._send(404, _NOT_FOUND)
            return
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        state = self.server.state
        with state.lock:
            state.peers.append(self.client_address[1])
            if "assertion" in form:
                state.assertions.append(form["assertion"])
        fault = state.next_fault()
        if fault is not None and act_out(fault, self, self._send):
            return
        status, body = self.server.oauth.token_response(form)
        self._send(status, json.dumps(body).encode())

    def _write_svcacct(self) -> None:
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not path.startswith(SVCACCT_PATH):
            self._send(404, _NOT_FOUND)
            return
        status, answer, headers = self.server.svcacct.write(
            self.command,
            path[len(SVCACCT_PATH) :],
            self.headers.get("Authorization", ""),
            self.headers.get("If-Match"),
            body,
        )
        self._send(status, json.dumps(answer).encode(), headers)

    do_PUT = do_PATCH = _write_svcacct

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith(SVCACCT_PATH):
            status, answer, headers = self.server.svcacct.get(
                path[len(SVCACCT_PATH) :], self.headers.get("Authorization", "")
            )
            self._send(status, json.dumps(answer).encode(), headers)
            return
        if path != USERS_PATH:
            self._send(404, _NOT_FOUND)
            return
        status, body = users_answer(self.server.state, self.headers.get("Authorization", ""))
        self._send(status, body)
