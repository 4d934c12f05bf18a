"""Lambda entry points: parse the event, call the vendor, shape the answer. Nothing else lives here."""

from __future__ import annotations

import logging
import time
from typing import Any

from token_vendor import observability
from token_vendor.deadline import Deadline
from token_vendor.errors import InternalError, InvalidRequest, TokenVendorError
from token_vendor.results import token_result
from token_vendor.runtime import Runtime
from token_vendor.vend_request import DIRECT_CALLER, parse_document

_runtime = Runtime()
_runtime.prepare()  # Lambda's init phase: settings and AWS clients, before the first request
_http_front: Any = None
_cold_start = True


def current_runtime() -> Runtime:
    return _runtime


def reset_runtime() -> None:
    """Forget the wiring (tests; a new environment). The next invocation re-reads the settings."""
    global _runtime
    _runtime = Runtime()


def _is_http_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("requestContext"), dict)
        and ("httpMethod" in event or event.get("version") == "2.0")
    )


# Members only API Gateway and Function URL events carry; a direct request has none of them.
_HTTP_MARKERS = ("requestContext", "headers", "multiValueHeaders", "httpMethod", "rawPath", "routeKey")


def _handle_direct(event: Any, context: Any) -> dict[str, Any]:
    try:
        if isinstance(event, dict) and any(marker in event for marker in _HTTP_MARKERS):
            raise InvalidRequest(
                "the event looks like an API Gateway event but is not a proxy event "
                "(REST proxy: httpMethod and requestContext; HTTP API or function URL: version 2.0); "
                'a direct request is {"scope": "..."}'
            )
        request = parse_document(event, DIRECT_CALLER)
        vended = _runtime.vendor().vend(request, Deadline.from_context(context, time.monotonic))
    except TokenVendorError as exc:
        observability.note_refusal(DIRECT_CALLER, exc)
        raise
    observability.note_vend(request, vended)
    return token_result(vended, time.time())


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Direct invocation and Step Functions tasks get the result or raise a stable error by class name;
    API Gateway events get an HTTP response. Either way, one audit line is written (observability)."""
    global _cold_start
    observability.begin(context, _cold_start)
    _cold_start = False
    try:
        return _dispatch(event, context)
    finally:
        observability.finish()


def _dispatch(event: Any, context: Any) -> dict[str, Any]:
    if _is_http_event(event):
        global _http_front
        if _http_front is None:
            from token_vendor.http_api import HttpFront

            _http_front = HttpFront(current_runtime)
        result: dict[str, Any] = _http_front.handle(event, context)
        return result
    try:
        return _handle_direct(event, context)
    except TokenVendorError:
        raise
    except Exception as exc:
        logging.getLogger("token_vendor").exception("unexpected error")
        internal = InternalError("internal error; the request id is in the function's logs")
        observability.note_refusal(DIRECT_CALLER, internal)
        raise internal from exc
