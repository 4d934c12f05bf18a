"""The stand-in's fault switches: scripted misbehaviours of AIC's token endpoint, one per token request.

Tests push faults (``AICStandIn.push_faults``) or set a sticky one; the HTTP part (``local/aic_server.py``)
acts each out on the connection with ``act_out``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

Send = Callable[[int, bytes, dict[str, str]], None]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, consumed by one token request.

    kind: ``status`` (answer ``status`` with ``body`` and optional ``retry_after``), ``slow`` (sleep
    ``delay`` then answer normally), ``slow_status`` (sleep ``delay``, then answer ``status``), ``drop``
    (close the connection without answering), ``truncated`` (promise more bytes than are sent),
    ``token_body`` (answer 200 with ``body`` verbatim), ``drip`` (answer 200 but send the body one byte
    every ``delay`` seconds: every read succeeds, none finishes).
    """

    kind: str
    status: int = 500
    body: bytes = b'{"error":"server_error","error_description":"stand-in fault"}'
    retry_after: str | None = None
    delay: float = 0.0


def act_out(fault: Fault, handler: BaseHTTPRequestHandler, send: Send) -> bool:
    """Act out a fault on ``handler``'s connection; True when the request is fully answered (or dropped)."""
    if fault.kind == "slow":
        time.sleep(fault.delay)
        return False
    if fault.kind == "slow_status":  # a struggling AIC: slow, then a failure
        time.sleep(fault.delay)
        send(fault.status, fault.body, {})
        return True
    if fault.kind == "drop":
        handler.close_connection = True
        handler.connection.close()
        return True
    if fault.kind == "drip":
        _drip(fault.delay, handler)
        return True
    if fault.kind == "truncated":
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "400")
        handler.end_headers()
        handler.wfile.write(b'{"access_token":"eyJ0eX')
        handler.close_connection = True
        return True
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
    send(200 if fault.kind == "token_body" else fault.status, fault.body, headers)
    return True


def _drip(delay: float, handler: BaseHTTPRequestHandler) -> None:
    body = b'{"access_token":"eyJ0eX","token_type":"Bearer","expires_in":899}'
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.flush()
    for byte in body:  # bounded: at most len(body) * delay seconds
        time.sleep(delay)
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            break
    handler.close_connection = True
