"""Lambda's Invoke API on loopback (``POST /2015-03-31/functions/{name}/invocations``), running the
handler in process.

So ``TokenClient.for_function``, the CLI's ``--function`` mode and ``aws lambda invoke --endpoint-url`` work
against the local stack, and the client's error mapping meets Lambda's real error envelope: an error raised
by the function answers HTTP 200 with ``X-Amz-Function-Error: Unhandled`` and a body holding
``errorType`` (the exception's class name: the vendor's stable error name) and ``errorMessage``.
An unknown function answers 404 ``ResourceNotFoundException``, as Lambda does.

Every request must carry a SigV4 signature (service ``lambda``) made with credentials the endpoint knows,
checked by the same specification-following verifier as the local API front. An unsigned or tampered
invoke gets 403 with Lambda's error type (``MissingAuthenticationTokenException``,
``UnrecognizedClientException``, ``InvalidSignatureException``) and runs nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from local.api_front import BAD_TOKEN, MISSING, Identity, Refused, verify_sigv4
from local.aws import LOCAL_AWS_ENV
from local.lambda_context import LocalContext
from local.quiet_server import QuietThreadingHTTPServer
from token_client.identity import function_name_of  # the name Lambda resolves, as clients do

ACCOUNT = "123456789012"
REGION = "us-east-1"
_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"

Handler = Callable[[Any, Any], Any]

# The developer credentials of the local stack (LOCAL_AWS_ENV), as the role session STS would name.
LOCAL_DEVELOPER = Identity(
    LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
    LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    LOCAL_AWS_ENV["AWS_SESSION_TOKEN"],
    f"arn:aws:sts::{ACCOUNT}:assumed-role/local-developer/local",
)
_ERROR_TYPES = {MISSING: "MissingAuthenticationTokenException", BAD_TOKEN: "UnrecognizedClientException"}


def error_envelope(exc: BaseException) -> dict[str, Any]:
    """What the Python runtime sends for an unhandled exception (the trace names frames, not values)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "",
        "stackTrace": [f'  File "{f.filename}", line {f.lineno}, in {f.name}\n' for f in frames],
    }


class LocalLambda:
    def __init__(
        self,
        functions: dict[str, Handler],
        *,
        timeout_seconds: float = 10.0,
        identities: dict[str, Identity] | None = None,
    ) -> None:
        self.functions = functions
        self.identities = {LOCAL_DEVELOPER.access_key: LOCAL_DEVELOPER, **(identities or {})}
        self.refused = 0
        self.timeout_seconds = timeout_seconds
        self.invocations = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def arn(self, name: str) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"

    def refusal(self, refused: Refused) -> tuple[int, dict[str, str], bytes]:
        """Lambda's 403 for a request whose signature the endpoint refused (counted)."""
        with self._lock:
            self.refused += 1
        error_type = _ERROR_TYPES.get(refused.message, "InvalidSignatureException")
        return 403, {"x-amzn-ErrorType": error_type}, json.dumps({"message": refused.message}).encode()

    def configuration(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """GetFunctionConfiguration's answer for ``path`` (``…/functions/{name}/configuration``)."""
        if not (path.startswith(_PREFIX) and path.endswith("/configuration")):
            return 404, {"x-amzn-ErrorType": "UnknownOperationException"}, b"{}"
        name = function_name_of(unquote(path[len(_PREFIX) :].rsplit("/", 1)[0]))
        if name not in self.functions:
            body = {"Type": "User", "message": f"Function not found: {self.arn(name)}"}
            return 404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, json.dumps(body).encode()
        body = {"FunctionName": name, "FunctionArn": self.arn(name), "Role": self.role(name)}
        return 200, {}, json.dumps(body).encode()

    def role(self, name: str) -> str:
        """The execution role GetFunctionConfiguration names (a key policy's principal)."""
        return f"arn:aws:iam::{ACCOUNT}:role/{name}-role"

    def start(self) -> LocalLambda:
        threading.Thread(target=self._httpd.serve_forever, name="local-lambda", daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def invoke(self, name: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        handler = self.functions.get(name)
        if handler is None:
            body = {"Type": "User", "message": f"Function not found: {self.arn(name)}"}
            return 404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, json.dumps(body).encode()
        try:
            event = json.loads(payload or b"{}")
        except ValueError:
            body = {"Type": "User", "message": "Could not parse request body into json"}
            return 400, {"x-amzn-ErrorType": "InvalidRequestContentException"}, json.dumps(body).encode()
        context = LocalContext(
            function_name=name, invoked_function_arn=self.arn(name), timeout_seconds=self.timeout_seconds
        )
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        with self._lock:
            self.invocations += 1
        try:
            result = handler(event, context)
        except Exception as exc:
            with self._lock:
                self.errors += 1
            envelope = error_envelope(exc)
            envelope["requestId"] = context.aws_request_id
            headers["X-Amz-Function-Error"] = "Unhandled"
            return 200, headers, json.dumps(envelope).encode()
        return 200, headers, json.dumps(result).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

            def do_GET(self) -> None:
                """GetFunctionConfiguration (``GET …/functions/{name}/configuration``): name, ARN, role."""
                if self._verified(b""):
                    self._send(*service.configuration(self.path.split("?", 1)[0]))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                if not self._verified(payload):
                    return
                if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
                    name = function_name_of(unquote(path[len(_PREFIX) : -len(_SUFFIX)]))
                    status, headers, body = service.invoke(name, payload)
                else:
                    status, headers, body = 404, {"x-amzn-ErrorType": "UnknownOperationException"}, b"{}"
                self._send(status, headers, body)

            def _verified(self, payload: bytes) -> bool:
                try:
                    verify_sigv4(
                        self.command,
                        self.headers.get("Host", ""),
                        self.path,
                        list(self.headers.items()),
                        payload,
                        service.identities,
                        REGION,
                        dt.datetime.now(dt.UTC),
                        "lambda",
                    )
                except Refused as refused:
                    self._send(*service.refusal(refused))
                    return False
                return True

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for header, value in headers.items():
                    self.send_header(header, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return RequestHandler
