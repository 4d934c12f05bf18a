"""Logs, metrics and the audit record. Nothing secret goes in: tokens appear only as fingerprints.

Powertools' Logger and Metrics are imported here and nowhere in the domain modules, which log through
standard ``logging`` children of the ``token_vendor`` logger (Powertools formats them as JSON). Tracer
is not created: it imports the X-Ray SDK (hundreds of milliseconds of cold start) even when disabled.
"""

from __future__ import annotations

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics

from cached_token import fingerprint
from errors import TokenVendorError
from vend_request import VendRequest
from vending import Vended

SERVICE = "token_vendor"
NAMESPACE = "TokenVendor"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class PowertoolsMetricsSink:
    def add_metric(self, name: str, unit: str, value: float) -> None:
        metrics.add_metric(name=name, unit=unit, value=value)


def audit_vend(request: VendRequest, vended: Vended) -> None:
    logger.info(
        "token vended",
        extra={
            "audit": True,
            "caller": request.caller,
            "scopes": list(request.scopes),
            "outcome": "ok",
            "tier": vended.tier,
            "jti": vended.jti,
            "token_fingerprint": fingerprint(vended.token.access_token),
            "expires_at": int(vended.token.expires_at),
        },
    )


def audit_refusal(caller: str, error: TokenVendorError) -> None:
    metrics.add_metric(name=f"Refused_{error.name}", unit="Count", value=1)
    logger.info(
        "token refused",
        extra={"audit": True, "caller": caller, "outcome": error.name, "error": error.message},
    )


def count_http_error(status: int) -> None:
    metrics.add_metric(name=f"HttpStatus_{status}", unit="Count", value=1)
