"""A loopback stand-in for API Gateway (REST, ``AWS_IAM`` authorization) in front of the handler.

It checks each request's SigV4 signature the way API Gateway does (same refusals, same wording), maps the
signing credentials to an IAM role session ARN, builds the REST proxy event and calls the handler in
process. So signed HTTP calls made with the real client library exercise the real authorization path.
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local import sigv4
from local.lambda_context import LocalContext
from local.quiet_server import QuietThreadingHTTPServer

STAGE = "v1"
MAX_SKEW = dt.timedelta(minutes=5)
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
MISSING = "Missing Authentication Token"
BAD_TOKEN = "The security token included in the request is invalid."
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Identity:
    access_key: str
    secret_key: str
    session_token: str | None
    user_arn: str
    account_id: str = "123456789012"


class Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadFraming(Exception):
    """A body whose length cannot be known for sure: answered, then the connection is closed, so no byte
    of it is ever read as the next request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


MAX_BODY = 1 << 20  # the vendor's requests are a few hundred bytes; API Gateway's own limit is 10 MB
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?\r\n")
_LINE_LIMIT = 4096


def read_body(rfile: io.BufferedIOBase, headers: Message) -> bytes:
    """The request body as RFC 9112 section 6 frames it: ``Content-Length`` bytes, or the decoded chunks
    of ``Transfer-Encoding: chunked`` (section 7.1: size line with optional extensions, data, CRLF; a
    zero-size chunk, then trailer lines up to an empty one). Both, two lengths, or another coding are
    refused (sections 6.1 and 6.3: such requests are how requests are smuggled)."""
    codings = headers.get_all("Transfer-Encoding") or []
    lengths = {value.strip() for value in headers.get_all("Content-Length") or []}
    if not codings:
        if len(lengths) > 1:
            raise BadFraming(400, "two different Content-Length values")
        length = lengths.pop() if lengths else "0"
        if not (length.isascii() and length.isdigit()):
            raise BadFraming(400, "Content-Length is not a number")
        if int(length) > MAX_BODY:
            raise BadFraming(413, "Request Entity Too Large")
        return rfile.read(int(length)) if int(length) else b""
    if lengths:
        raise BadFraming(400, "Content-Length and Transfer-Encoding together")
    if ",".join(codings).replace(" ", "").lower() != "chunked":
        raise BadFraming(501, "only Transfer-Encoding: chunked is understood")
    body = bytearray()
    while True:
        size_line = _CHUNK_SIZE.fullmatch(rfile.readline(_LINE_LIMIT))
        if size_line is None:
            raise BadFraming(400, "malformed chunk size line")
        size = int(size_line[1], 16)
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise BadFraming(413, "Request Entity Too Large")
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.read(2) != b"\r\n":
            raise BadFraming(400, "chunk shorter than its size, or not ended by CRLF")
        body += chunk
    for _ in range(64):  # trailer section: read and dropped (nothing here signs or reads trailers)
        line = rfile.readline(_LINE_LIMIT)
        if line == b"\r\n":
            return bytes(body)
        if not line.endswith(b"\r\n"):
            break
    raise BadFraming(400, "malformed trailer section")


def verify_sigv4(
    method: str,
    host: str,
    path_and_query: str,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes,
    identities: dict[str, Identity],
    region: str,
    now: dt.datetime,
    service: str = "execute-api",
) -> Identity:
    """Return the caller's identity, or raise ``Refused`` with API Gateway's wording.

    The canonical request is built from the request as it arrived, the way the specification says
    (``local.sigv4``), not with botocore's client-side shortcuts."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    lower: dict[str, str] = {}
    for name, value in pairs:
        lower.setdefault(name.lower(), value)
    match = _AUTH.fullmatch(lower.get("authorization", "").strip())
    if not match:
        raise Refused(MISSING)
    identity = identities.get(match["akid"])
    if identity is None or match["service"] != service or match["region"] != region:
        raise Refused(BAD_TOKEN)
    if identity.session_token is not None and lower.get("x-amz-security-token") != identity.session_token:
        raise Refused(BAD_TOKEN)
    stamp = lower.get("x-amz-date", "")
    try:
        signed_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise Refused(MISSING) from None
    if abs(now - signed_at) > MAX_SKEW or match["date"] != stamp[:8]:
        fmt = "%Y%m%dT%H%M%SZ"
        raise Refused(
            f"Signature expired: {stamp} is now earlier than {(now - MAX_SKEW).strftime(fmt)} "
            f"({now.strftime(fmt)} - 5 min.)"
        )
    signed = match["signed"].split(";")
    if "host" not in signed or signed != sorted(signed):
        raise Refused(MISMATCH)
    body_hash = sigv4.payload_hash(body)
    claimed = lower.get("x-amz-content-sha256")
    if claimed is not None and claimed != body_hash:  # never trust the client's word for the body
        raise Refused(MISMATCH)
    if "host" not in lower:
        pairs.append(("host", host))
    path, _, query = path_and_query.partition("?")
    canonical = sigv4.canonical_request(method, path, query, pairs, signed, body_hash)
    scope = f"{match['date']}/{region}/{service}/aws4_request"
    expected = sigv4.signature(
        identity.secret_key, match["date"], region, service, sigv4.string_to_sign(stamp, scope, canonical)
    )
    if not hmac.compare_digest(expected, match["signature"]):
        raise Refused(MISMATCH)
    return identity


def rest_event(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes, identity: Identity
) -> dict[str, Any]:
    params = parse_qs(query, keep_blank_values=True) if query else None
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in params.items()} if params else None,
        "multiValueQueryStringParameters": params,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": identity.account_id,
            "apiId": "local",
            "httpMethod": method,
            "identity": {
                "accessKey": identity.access_key,
                "accountId": identity.account_id,
                "caller": identity.user_arn.rsplit("/", 1)[-1],
                "sourceIp": "127.0.0.1",
                "user": identity.user_arn.rsplit("/", 1)[-1],
                "userAgent": headers.get("User-Agent", ""),
                "userArn": identity.user_arn,
            },
            "path": f"/{STAGE}{path}",
            "protocol": "HTTP/1.1",
            "requestId": LocalContext().aws_request_id,
            "resourcePath": path,
            "stage": STAGE,
        },
        "body": body.decode("utf-8", "replace") if body else None,
        "isBase64Encoded": False,
    }


def function_url_event(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes, identity: Identity
) -> dict[str, Any]:
    """A Lambda function URL event (payload 2.0, ``AuthType: AWS_IAM``) as Lambda builds it."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "localfunctionurl",
            "authorizer": {
                "iam": {
                    "accessKey": identity.access_key,
                    "accountId": identity.account_id,
                    "callerId": identity.user_arn.rsplit("/", 1)[-1],
                    "userArn": identity.user_arn,
                    "userId": identity.user_arn.rsplit("/", 1)[-1],
                }
            },
            "domainName": lowered.get("host", "localhost"),
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": LocalContext().aws_request_id,
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": body.decode("utf-8", "replace") if body else None,
        "isBase64Encoded": False,
    }


class ApiFront:
    def __init__(
        self,
        handler: Callable[[dict[str, Any], Any], dict[str, Any]],
        identities: dict[str, Identity],
        *,
        region: str = "us-east-1",
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        function_url: bool = False,
    ) -> None:
        """``function_url``: act as a Lambda function URL (SigV4 service ``lambda``, payload 2.0 events,
        no stage in the path) instead of the REST API (service ``execute-api``, stage ``v1``)."""
        self.handler = handler
        self.function_url = function_url
        self.service = "lambda" if function_url else "execute-api"
        self.identities = identities
        self.region = region
        self.clock = clock
        self.forwarded = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._httpd = _FrontServer(("127.0.0.1", 0), self)
        root = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.base_url = root if function_url else f"{root}/{STAGE}"
        self.token_url = f"{self.base_url}/token"

    def start(self) -> ApiFront:
        threading.Thread(target=self._httpd.serve_forever, name="api-front", daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def event_for(
        self, method: str, target: str, headers: dict[str, str], body: bytes, identity: Identity
    ) -> dict[str, Any]:
        """The event API Gateway (payload 1.0, the stage stripped) or a function URL (2.0) would send."""
        parts = urlsplit(target)
        if self.function_url:
            return function_url_event(method, parts.path, parts.query, headers, body, identity)
        stage_prefix = f"/{STAGE}"
        path = parts.path[len(stage_prefix) :] if parts.path.startswith(stage_prefix + "/") else parts.path
        return rest_event(method, path, parts.query, headers, body, identity)

    def forward(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.forwarded += 1
        return self.handler(event, LocalContext())

    def count_refused(self) -> None:
        with self._lock:
            self.refused += 1


class _FrontServer(QuietThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], front: ApiFront) -> None:
        super().__init__(address, _FrontHandler)
        self.front = front


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stalls
    server: _FrontServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        front = self.server.front
        try:
            body = read_body(self.rfile, self.headers)
        except BadFraming as bad:
            self.close_connection = True
            payload = json.dumps({"message": bad.message}).encode()
            self._answer(bad.status, payload, {"Content-Type": "application/json", "Connection": "close"})
            return
        headers = dict(self.headers.items())
        try:
            identity = verify_sigv4(
                self.command,
                self.headers.get("Host", ""),
                self.path,
                list(self.headers.items()),
                body,
                front.identities,
                front.region,
                front.clock(),
                front.service,
            )
        except Refused as refused:
            front.count_refused()
            payload = json.dumps({"message": refused.message}).encode()
            self._answer(
                403,
                payload,
                {"Content-Type": "application/json", "x-amzn-ErrorType": "IncompleteSignatureException"},
            )
            return
        response = front.forward(front.event_for(self.command, self.path, headers, body, identity))
        out_headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            out_headers.setdefault(name, ", ".join(values))
        self._answer(int(response["statusCode"]), str(response.get("body") or "").encode(), out_headers)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve
