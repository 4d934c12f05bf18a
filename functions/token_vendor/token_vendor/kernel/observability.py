"""Logs, metrics and the audit record. Nothing secret goes in: tokens appear only as fingerprints.

Every invocation writes exactly one JSON line: the audit record of the vend (or refusal) carrying that
invocation's metrics in CloudWatch Embedded Metric Format. One ``json.dumps`` and one write, instead of a
Powertools log record plus a separate EMF flush: on a memory hit that is most of the handler's cost.
Other log lines (warnings, errors) go through Powertools' Logger; the domain modules log through
standard ``logging`` children of the ``token_vendor`` logger, which it formats as JSON. Tracer is not
used: it imports the X-Ray SDK (hundreds of milliseconds of cold start) even when disabled.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

from token_vendor.kernel.cached_token import Vended, fingerprint
from token_vendor.kernel.errors import TokenVendorError
from token_vendor.kernel.vend_request import VendRequest

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "token_vendor"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "TokenVendor"
MAX_METRICS_PER_RECORD = 100  # EMF limit


SERVICE_LOGGER = "token_vendor"  # the parent of every module's logger


class _PowertoolsOnFirstRecord(logging.Handler):
    """Installs Powertools' Logger on the first record the function logs, then hands records to it.

    The happy path (a memory or table hit) logs nothing but the audit line, so a cold start served from
    the cache never imports Powertools (~40 modules, ~10 ms); the first warning or error does.
    """

    def emit(self, record: logging.LogRecord) -> None:
        from aws_lambda_powertools.logging import Logger

        service_logger = logging.getLogger(SERVICE_LOGGER)
        powertools = Logger(service=SERVICE)  # JSON formatting, POWERTOOLS_LOG_LEVEL, sampling
        service_logger.removeHandler(self)
        if powertools.name != SERVICE_LOGGER:  # a custom POWERTOOLS_SERVICE_NAME names another logger
            for handler in logging.getLogger(powertools.name).handlers:
                service_logger.addHandler(handler)
        for handler in service_logger.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def _install_logging() -> None:
    service_logger = logging.getLogger(SERVICE_LOGGER)
    level = (os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO").upper()
    service_logger.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO")
    installed = getattr(service_logger, "powertools_handler", None) or any(
        isinstance(h, _PowertoolsOnFirstRecord) for h in service_logger.handlers
    )
    if not installed:
        service_logger.addHandler(_PowertoolsOnFirstRecord())


_install_logging()


class _Invocation:
    __slots__ = ("cold_start", "fields", "function_name", "metrics", "request_id")

    def __init__(self, request_id: str, function_name: str, cold_start: bool) -> None:
        self.request_id = request_id
        self.function_name = function_name
        self.cold_start = cold_start
        self.metrics: dict[str, tuple[str, list[float]]] = {}
        self.fields: dict[str, Any] = {"message": "invocation", "outcome": "unknown"}


_current = threading.local()  # Lambda runs one invocation per environment; tests run several at once
_output: TextIO | None = None  # None: sys.stdout at write time (what Lambda captures)


def set_output(stream: TextIO | None) -> None:
    """Send audit lines elsewhere (the local demo keeps its terminal readable); None restores stdout."""
    global _output
    _output = stream


class InvocationMetrics:
    """The vendor's metrics sink: buffers into the current invocation's record."""

    def add_metric(self, name: str, unit: str, value: float) -> None:
        invocation: _Invocation | None = getattr(_current, "invocation", None)
        if invocation is None:
            return
        entry = invocation.metrics.get(name)
        if entry is None:
            invocation.metrics[name] = (unit, [value])
        else:
            entry[1].append(value)


METRICS = InvocationMetrics()


def begin(context: Any, cold_start: bool) -> None:
    _current.invocation = _Invocation(
        str(getattr(context, "aws_request_id", "") or ""),
        str(getattr(context, "function_name", "") or ""),
        cold_start,
    )
    if cold_start:
        METRICS.add_metric("ColdStart", "Count", 1)


def current_request_id() -> str:
    invocation: _Invocation | None = getattr(_current, "invocation", None)
    return invocation.request_id if invocation is not None else ""


def note_vend(request: VendRequest, vended: Vended) -> None:
    invocation: _Invocation | None = getattr(_current, "invocation", None)
    if invocation is not None:
        invocation.fields = {
            "message": "token vended",
            "caller": request.caller,
            "identified": request.identified,
            "scopes": list(request.scopes),
            "outcome": "ok",
            "tier": vended.tier,
            "jti": vended.jti,
            "token_fingerprint": fingerprint(vended.token.access_token),
            "key_version": vended.token.key_version or None,  # the secret version whose key minted it
            "expires_at": int(vended.token.expires_at),
        }
        if vended.retired is not None:
            invocation.fields["retired_fingerprint"] = vended.retired
        if request.rejected is not None:
            invocation.fields["reported_fingerprint"] = request.rejected
        if vended.retire_rate_limited:
            invocation.fields["retire_rate_limited"] = True


def note_scheduled_refresh(summary: dict[str, Any]) -> None:
    invocation: _Invocation | None = getattr(_current, "invocation", None)
    if invocation is not None:
        invocation.fields = {"message": "scheduled refresh", "outcome": "ok", **summary}


def note_refusal(caller: str, error: TokenVendorError) -> None:
    METRICS.add_metric(f"Refused_{error.name}", "Count", 1)
    invocation: _Invocation | None = getattr(_current, "invocation", None)
    if invocation is not None:
        invocation.fields = {
            "message": "token refused",
            "caller": caller,
            "outcome": error.name,
            "error": error.message,
        }


def note_http_error(error: TokenVendorError) -> None:
    """Every HTTP error answer counts; one refused before a vend was attempted (404, 405, a malformed
    event) also becomes the invocation's audit outcome."""
    METRICS.add_metric(f"HttpStatus_{error.status}", "Count", 1)
    invocation: _Invocation | None = getattr(_current, "invocation", None)
    # An unexpected failure counts toward InternalErrorAlarm on every front (issue 32: over HTTP it was a
    # bare 500); one raised inside a vend was counted by note_refusal already.
    refused = f"Refused_{error.name}"
    if error.name == "InternalError" and (invocation is None or refused not in invocation.metrics):
        METRICS.add_metric(refused, "Count", 1)
    if invocation is not None and invocation.fields.get("outcome") == "unknown":
        invocation.fields = {"message": "request refused", "outcome": error.name, "error": error.message}


def finish() -> None:
    """Write the invocation's one audit line, with its metrics embedded (EMF)."""
    invocation: _Invocation | None = getattr(_current, "invocation", None)
    _current.invocation = None
    if invocation is None:
        return
    now_ms = int(time.time() * 1000)
    record: dict[str, Any] = {
        "level": "INFO",
        "timestamp": now_ms,
        "service": SERVICE,
        "function_request_id": invocation.request_id,
        "function_name": invocation.function_name,
        "cold_start": invocation.cold_start,
        "audit": True,
        **invocation.fields,
    }
    names = list(invocation.metrics)[:MAX_METRICS_PER_RECORD]
    if names:
        record["_aws"] = {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": n, "Unit": invocation.metrics[n][0]} for n in names],
                }
            ],
        }
        for name in names:
            values = invocation.metrics[name][1]
            record[name] = values[0] if len(values) == 1 else values
    (_output or sys.stdout).write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
