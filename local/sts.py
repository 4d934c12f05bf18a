"""A loopback STS that answers ``GetCallerIdentity``, for identity proofs in the local stack.

Like STS, it answers only a request whose SigV4 signature (service ``sts``) verifies with credentials it
knows (the local API front's verifier), with STS's XML: the caller's ARN on 200, an ``ErrorResponse``
(``SignatureDoesNotMatch``, ``InvalidClientTokenId``, ``MissingAuthenticationToken``) on 403.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.sax.saxutils import escape

from local.api_front import BAD_TOKEN, MISSING, Identity, Refused, verify_sigv4
from local.lambda_invoke import LOCAL_DEVELOPER
from local.quiet_server import QuietThreadingHTTPServer

REGION = "us-east-1"
_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_CODES = {MISSING: "MissingAuthenticationToken", BAD_TOKEN: "InvalidClientTokenId"}


def identity_xml(identity: Identity, request_id: str) -> bytes:
    user_id = f"AROALOCAL{abs(hash(identity.user_arn)) % 10**12:012d}:{identity.user_arn.rsplit('/', 1)[-1]}"
    return (
        f'<GetCallerIdentityResponse xmlns="{_NS}">\n'
        "  <GetCallerIdentityResult>\n"
        f"    <Arn>{escape(identity.user_arn)}</Arn>\n"
        f"    <UserId>{escape(user_id)}</UserId>\n"
        f"    <Account>{identity.account_id}</Account>\n"
        "  </GetCallerIdentityResult>\n"
        f"  <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\n"
        "</GetCallerIdentityResponse>\n"
    ).encode()


def error_xml(code: str, message: str, request_id: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{_NS}">\n'
        f"  <Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>\n"
        f"  <RequestId>{request_id}</RequestId>\n"
        "</ErrorResponse>\n"
    ).encode()


class LocalSts:
    def __init__(self, identities: dict[str, Identity] | None = None) -> None:
        self.identities = {LOCAL_DEVELOPER.access_key: LOCAL_DEVELOPER, **(identities or {})}
        self.calls = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def start(self) -> LocalSts:
        threading.Thread(target=self._httpd.serve_forever, name="local-sts", daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(
        self, method: str, host: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes]:
        request_id = str(uuid.uuid4())
        with self._lock:
            self.calls += 1
        try:
            identity = verify_sigv4(
                method, host, path, headers, body, self.identities, REGION, dt.datetime.now(dt.UTC), "sts"
            )
        except Refused as refused:
            with self._lock:
                self.refused += 1
            code = _CODES.get(refused.message, "SignatureDoesNotMatch")
            return 403, error_xml(code, refused.message, request_id)
        if body.decode(errors="replace") != "Action=GetCallerIdentity&Version=2011-06-15":
            return 400, error_xml("InvalidAction", "only GetCallerIdentity is served here", request_id)
        return 200, identity_xml(identity, request_id)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sts = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = sts.answer(
                    self.command, self.headers.get("Host", ""), self.path, list(self.headers.items()), body
                )
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        return Handler
