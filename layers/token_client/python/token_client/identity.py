"""The caller's proof of identity for a direct invoke (the vendor's CONTRACT section 5).

A signed ``sts:GetCallerIdentity`` request, not sent: the vendor sends it to STS, which checks the
signature and names the caller, so the vendor can apply CALLER_POLICY to a Lambda caller as it does to an
HTTP caller. The signed ``X-Token-Vendor-Audience`` header binds the proof to one vendor (its function
name), so no other service that receives it can replay it here. A proof is reused for up to 4 minutes
(STS accepts it for 5; the vendor remembers a verified one until then).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

BODY = "Action=GetCallerIdentity&Version=2011-06-15"
REUSE_SECONDS = 240.0


def function_name_of(reference: str) -> str:
    """A name, a partial ARN or a full ARN (optionally with a qualifier) -> the function's name."""
    parts = reference.split(":")
    if reference.startswith("arn:") and len(parts) >= 7:
        return parts[6]
    if len(parts) >= 3 and parts[1] == "function":  # ACCOUNT:function:NAME
        return parts[2]
    return parts[0]


def audience_for(function: str) -> str:
    """``IDENTITY_AUDIENCE`` when set (on both sides), else the function's name from a name or an ARN."""
    return os.environ.get("IDENTITY_AUDIENCE", "").strip() or function_name_of(function)


def _host(url: str) -> str:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


class IdentityProver:
    """Signs (and reuses for up to 4 minutes) the proof a direct invoke carries as ``identity``."""

    def __init__(
        self,
        session: Any,
        region: str,
        audience: str,
        *,
        sts_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._region = region
        self._audience = audience
        self._sts_url = sts_url
        self._clock = clock
        self._proof: dict[str, Any] | None = None
        self._made_at = 0.0
        self._lock = threading.Lock()

    def _endpoint(self) -> str:
        if self._sts_url is None:
            # botocore resolves it as for any call: AWS_ENDPOINT_URL_STS, a profile's endpoint, or the
            # regional endpoint https://sts.REGION.amazonaws.com.
            client = self._session.create_client("sts", region_name=self._region)
            self._sts_url = client.meta.endpoint_url.rstrip("/") + "/"
        return self._sts_url

    def proof(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            if self._proof is None or now - self._made_at >= REUSE_SECONDS:
                self._proof, self._made_at = self._sign(), now
            return self._proof

    def _sign(self) -> dict[str, Any]:
        from token_client.errors import SetupError

        credentials = self._session.get_credentials()
        if credentials is None:
            raise SetupError("no AWS credentials found to sign the identity proof")
        url = self._endpoint()
        request = AWSRequest(
            method="POST",
            url=url,
            data=BODY,
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "X-Token-Vendor-Audience": self._audience,
            },
        )
        SigV4Auth(credentials.get_frozen_credentials(), "sts", self._region).add_auth(request)
        headers = {name: str(value) for name, value in request.headers.items()}
        headers["Host"] = _host(url)  # signed from the URL; sent as a header so the vendor can check it
        return {"method": "POST", "url": url, "headers": headers, "body": BODY}
