"""The HTTP front: API Gateway REST proxy (v1) and HTTP API (v2) events (CONTRACT sections 5 and 7).

Errors are mapped to HTTP in exactly one place (``_error_response``): an RFC 6749 section 5.2 body, the
status of the error's class, ``Cache-Control: no-store`` on every answer, ``Retry-After`` on 503.
Imported only for HTTP events, so direct invocations do not pay for the event handler at cold start.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from token_vendor.fronts.answers import token_result
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import (
    AccessDenied,
    ConfigurationError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    TokenVendorError,
    UpstreamUnavailable,
)
from token_vendor.kernel.observability import current_request_id, note_http_error, note_refusal, note_vend
from token_vendor.kernel.vend_request import VendRequest, parse_document, parse_json_body, parse_query
from token_vendor.wiring import Runtime

logger = logging.getLogger("token_vendor").getChild(__name__)

TOKEN_PATH = "/token"  # noqa: S105 - a URL path, not a credential
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _json(status: int, body: Mapping[str, Any], extra: Mapping[str, str] | None = None) -> Response[str]:
    headers = dict(NO_STORE)
    headers.update(extra or {})
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, separators=(",", ":")),
        headers=headers,
    )


def error_body(error: TokenVendorError) -> dict[str, str]:
    """The RFC 6749 section 5.2 body. A configuration or internal failure names nothing to an HTTP caller
    (no secret, ARN, account or policy entry): a fixed description and the request id; the log line, and
    direct invokers (inside the account), get the detail."""
    description = error.message
    if isinstance(error, (ConfigurationError, InternalError)):
        description = (
            "the token vendor could not serve this request; operators find the cause in its logs "
            f"under request id {current_request_id() or 'unknown'}"
        )
    return {"error": error.code, "error_description": description}


def _error_response(error: TokenVendorError) -> Response[str]:
    note_http_error(error)
    extra: dict[str, str] = {}
    if isinstance(error, UpstreamUnavailable):
        extra["Retry-After"] = str(error.retry_after)
    if isinstance(error, MethodNotAllowed):
        extra["Allow"] = "GET, POST"
    return _json(error.status, error_body(error), extra)


def _build(
    resolver: ApiGatewayResolver,
    runtime: Callable[[], Runtime],
    caller_of: Callable[[ApiGatewayResolver], str | None],
    query_of: Callable[[ApiGatewayResolver], dict[str, list[str]]],
    identified: str,
) -> ApiGatewayResolver:
    def caller() -> str:
        arn = caller_of(resolver)
        if not arn:
            raise AccessDenied("the request carries no IAM identity; the API must use AWS_IAM authorization")
        return arn

    def serve(parse: Callable[[str], VendRequest]) -> Response[str]:
        arn = caller()
        try:
            request = replace(parse(arn), identified=identified)
            vendor = runtime().vendor()
            deadline = Deadline.from_context(resolver.lambda_context, time.monotonic)
            vended = vendor.vend(request, deadline)
        except TokenVendorError as exc:
            note_refusal(arn, exc)
            raise
        note_vend(request, vended)
        return _json(200, token_result(vended, time.time()))

    @resolver.get(TOKEN_PATH)
    def get_token() -> Response[str]:
        return serve(lambda arn: parse_query(query_of(resolver), arn))

    @resolver.post(TOKEN_PATH)
    def post_token() -> Response[str]:
        event = resolver.current_event
        return serve(
            lambda arn: parse_document(parse_json_body(event.body, bool(event.is_base64_encoded)), arn)
        )

    @resolver.not_found
    def not_found(_: NotFoundError) -> Response[str]:
        method = resolver.current_event.http_method
        if resolver.current_event.path.rstrip("/") == TOKEN_PATH and method not in ("GET", "POST"):
            return _error_response(
                MethodNotAllowed(f"{method} is not served on {TOKEN_PATH}; use GET or POST")
            )
        return _error_response(NotFound(f"no such resource; the API serves {TOKEN_PATH}"))

    @resolver.exception_handler(TokenVendorError)  # type: ignore[untyped-decorator]
    def vendor_error(exc: TokenVendorError) -> Response[str]:
        return _error_response(exc)

    @resolver.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return _error_response(InternalError("internal error; the request id is in the function's logs"))

    return resolver


def _rest_caller(resolver: ApiGatewayResolver) -> str | None:
    context = resolver.current_event.get("requestContext") or {}
    identity = context.get("identity") or {}
    arn = identity.get("userArn")
    return arn if isinstance(arn, str) else None


def _http_v2_caller(resolver: ApiGatewayResolver) -> str | None:
    context = resolver.current_event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    arn = (authorizer.get("iam") or {}).get("userArn")
    return arn if isinstance(arn, str) else None


def _rest_query(resolver: ApiGatewayResolver) -> dict[str, list[str]]:
    event = resolver.current_event
    multi = event.get("multiValueQueryStringParameters")
    if isinstance(multi, dict):
        return {k: list(v) for k, v in multi.items() if isinstance(v, list)}
    single = event.get("queryStringParameters") or {}
    return {k: [v] for k, v in single.items() if isinstance(v, str)}


def _http_v2_query(resolver: ApiGatewayResolver) -> dict[str, list[str]]:
    # v2 joins repeated parameters with commas, and a comma is a legal scope character: read the raw query.
    raw = resolver.current_event.get("rawQueryString") or ""
    return parse_qs(raw, keep_blank_values=True) if isinstance(raw, str) else {}


class HttpFront:
    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self.rest = _build(APIGatewayRestResolver(), runtime, _rest_caller, _rest_query, "api-gateway")
        # Payload 2.0 reaches this stack only from its function URL (the template deploys no HTTP API).
        self.http_v2 = _build(
            APIGatewayHttpResolver(), runtime, _http_v2_caller, _http_v2_query, "function-url"
        )

    def handle(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        is_v2 = event.get("version") == "2.0"
        problem = _shape_problem(event, is_v2)
        resolver = self.http_v2 if is_v2 else self.rest
        if problem:
            return _raw_error(resolver, InvalidRequest(f"not an API Gateway proxy event: {problem}"))
        try:
            return resolver.resolve(event, context)
        except Exception:  # the resolver itself failed on an odd event; handlers map everything else
            logger.exception("unexpected error in the HTTP front")
            return _raw_error(
                resolver, InternalError("internal error; the request id is in the function's logs")
            )


def _shape_problem(event: Mapping[str, Any], is_v2: bool) -> str | None:
    """What the resolver relies on; API Gateway always sends it, a hand-made event may not."""
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        return "requestContext is missing"
    if is_v2:
        http = context.get("http")
        if not isinstance(http, Mapping) or not isinstance(http.get("method"), str):
            return "requestContext.http.method is missing"
        if not isinstance(event.get("rawPath"), str) or not isinstance(context.get("stage"), str):
            return "rawPath or requestContext.stage is missing"
    elif not isinstance(event.get("httpMethod"), str) or not isinstance(event.get("path"), str):
        return "httpMethod or path is missing"
    for name in ("headers", "queryStringParameters"):
        problem = _string_map_problem(name, event.get(name), lambda v: isinstance(v, str), "a string")
        if problem:
            return problem
    for name in ("multiValueHeaders", "multiValueQueryStringParameters"):
        problem = _string_map_problem(name, event.get(name), _is_string_list, "a list of strings")
        if problem:
            return problem
    if is_v2 and event.get("rawQueryString") is not None and not isinstance(event.get("rawQueryString"), str):
        return "rawQueryString must be a string"
    if event.get("body") is not None and not isinstance(event.get("body"), str):
        return "body must be a string"
    return None


def _is_string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _string_map_problem(name: str, value: object, valid: Callable[[object], bool], kind: str) -> str | None:
    """API Gateway sends header and query values as strings; anything else is refused before any route."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return f"{name} must be an object"
    for key, item in value.items():
        if not isinstance(key, str) or not valid(item):
            return f"{name} values must be {kind}"
    return None


def _raw_error(resolver: ApiGatewayResolver, error: TokenVendorError) -> dict[str, Any]:
    """The error response in the resolver's output format, for failures outside its routing."""
    note_http_error(error)
    headers = dict(NO_STORE)
    headers["Content-Type"] = "application/json"
    body = json.dumps(error_body(error), separators=(",", ":"))
    response: dict[str, Any] = {"statusCode": error.status, "body": body, "isBase64Encoded": False}
    if isinstance(resolver, APIGatewayHttpResolver):
        response["headers"] = headers
    else:
        response["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return response
