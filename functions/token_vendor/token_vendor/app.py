"""Lambda entry points: parse the event, call the vendor, shape the answer. Nothing else lives here.

Two functions run this package (CONTRACT section 1), each named in template.yaml:
- ``lambda_handler`` (``TokenVendorFunction``): direct invocations and Step Functions tasks. A function
  cannot tell who invoked it, so an event shaped like API Gateway or a function URL is refused here: its
  identity would be whatever the invoker wrote. A direct invoker proves who it is with a signed
  ``sts:GetCallerIdentity`` (``identity``), which STS checks.
- ``http_handler`` (``TokenApiFunction``): API Gateway and function URL events only, whose identity the
  service wrote; its resource-based permissions name only this stack's API and function URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from token_vendor.fronts.answers import token_result
from token_vendor.kernel import observability, snapshot
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import InternalError, InvalidRequest, TokenVendorError
from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest, parse_document
from token_vendor.wiring import Runtime

_runtime = Runtime()
_runtime.prepare()  # Lambda's init phase: settings and AWS clients, before the first request
snapshot.install()  # after a SnapStart restore (or a fork): new connections, watchdog, jitter
_http_front: Any = None
_cold_start = True
logger = logging.getLogger("token_vendor")

# Members only API Gateway and function URL events carry (CONTRACT section 1), and their companions.
_HTTP_MARKERS = ("requestContext", "httpMethod", "routeKey", "rawPath", "headers", "multiValueHeaders")


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


def _begin(context: Any) -> None:
    global _cold_start
    observability.begin(context, _cold_start)
    _cold_start = False


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """``TokenVendorFunction``: the result, or a stable error raised by class name (Step Functions
    ``ErrorEquals`` matches it). One audit line per invocation."""
    _begin(context)
    try:
        return _direct(event, context)
    except TokenVendorError:
        raise
    except Exception as exc:
        logger.exception("unexpected error")
        internal = InternalError("internal error; the request id is in the function's logs")
        observability.note_refusal(DIRECT_CALLER, internal)
        raise internal from exc
    finally:
        observability.finish()


def http_handler(event: Any, context: Any) -> dict[str, Any]:
    """``TokenApiFunction``: API Gateway (REST) and function URL events get an HTTP response; anything
    else is refused, raised as ``InvalidRequest`` (whoever sent it invoked the function directly)."""
    _begin(context)
    try:
        if not _is_http_event(event):
            error = InvalidRequest(
                "this function serves API Gateway and function URL events only; invoke the token vendor "
                "function (TokenVendorFunction) for a direct request"
            )
            observability.note_refusal(DIRECT_CALLER, error)
            raise error
        global _http_front
        if _http_front is None:
            from token_vendor.fronts.http_api import HttpFront

            _http_front = HttpFront(current_runtime)
        result: dict[str, Any] = _http_front.handle(event, context)
        return result
    finally:
        observability.finish()


def _direct(event: Any, context: Any) -> dict[str, Any]:
    caller = DIRECT_CALLER
    try:
        if isinstance(event, Mapping) and any(marker in event for marker in _HTTP_MARKERS):
            raise InvalidRequest(
                "an API Gateway or function URL event is not served by this function: its identity would be "
                'whatever the invoker wrote. A direct request is {"scope": "..."}, optionally with an '
                "identity proof ('identity'); HTTP callers use the API"
            )
        if isinstance(event, Mapping) and "refresh" in event:
            return _scheduled_refresh(event, context)
        proof_document = event.get("identity") if isinstance(event, Mapping) else None
        document = (
            {k: v for k, v in event.items() if k != "identity"} if isinstance(event, Mapping) else event
        )
        request = parse_document(document, DIRECT_CALLER)
        vendor = _runtime.vendor()
        deadline = Deadline.from_context(context, time.monotonic)
        if isinstance(event, Mapping) and "identity" in event:
            request = _proven(request, proof_document, deadline)
            caller = request.caller
        vended = vendor.vend(request, deadline)
    except TokenVendorError as exc:
        observability.note_refusal(caller, exc)
        raise
    observability.note_vend(request, vended)
    return token_result(vended, time.time())


def _scheduled_refresh(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """``{"refresh": "due"}`` from the schedule: counts and fingerprints, never a token (CONTRACT 5)."""
    if dict(event) != {"refresh": "due"}:
        raise InvalidRequest('a scheduled refresh event is exactly {"refresh": "due"}')
    summary = _runtime.refresher().run(Deadline.from_context(context, time.monotonic))
    observability.note_scheduled_refresh(summary.as_result())
    return summary.as_result()


def _proven(request: VendRequest, proof_document: object, deadline: Deadline) -> VendRequest:
    """The request as the principal STS names. The proof is parsed before anything is remembered or sent;
    a proof that fails never falls back to DIRECT_INVOKE_SCOPES (CONTRACT section 6)."""
    settings = _runtime.vendor().settings
    arn = _runtime.proof_verifier().identify(
        proof_document,
        sts_url=settings.sts_endpoint_url,
        audience=settings.identity_audience,
        deadline=deadline,
    )
    return replace(request, caller=arn, identified="sts-proof")
