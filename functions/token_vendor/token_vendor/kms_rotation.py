"""Keyless key rotation, the function's side (issue 35; CONTRACT section 9).

In the keyless mode the next key is a new KMS key that ``aic-token rotate`` creates, enrols in AIC and
switches the alias to, with the operator's rights (administrators manage keys, never sign with them). The
``KeyRotationFunction`` answers two steps only, public material only:

- ``status``: the key ``SIGNING_KEY_ID`` resolves to now (``AWSCURRENT``: ARN, ``kid``, public JWK,
  account), and with ``signingKeyId`` (a key ARN) that key's too (``key``): its public JWK is what
  AIC must list before the test;
- ``test``: one exchange at AIC signed by ``kms:Sign`` with the key ``signingKeyId`` names. That key's
  policy lets this function sign only while ``aic-token rotate`` tests it; the stack's key, never.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from token_vendor.adapters.aic.assertion import Assertion, sign_assertion_with
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws import bounded_client
from token_vendor.adapters.aws.kms_signer import KmsKey, KmsSigner
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import InvalidRequest
from token_vendor.kernel.scopes import normalise_scopes
from token_vendor.kernel.settings import Settings

_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,64}")


def _described(key: KmsKey) -> dict[str, Any]:
    public = {k: key.public_jwk[k] for k in ("kty", "n", "e", "kid")}
    return {"keyArn": key.version_id, "versionId": key.version_id, "kid": key.kid, "publicJwk": public,
            "account": key.account_id}  # fmt: skip


def keyless_step(
    event: dict[str, Any], settings: Settings, kms: Any, endpoint: TokenEndpoint
) -> dict[str, Any]:
    """One step (``status`` or ``test``) of a keyless rotation; the event was checked by the handler."""
    if settings.signing_key_id is None:  # the handler dispatches here in the keyless mode only
        raise InvalidRequest("this stack signs with a secret, not a KMS key")
    action = event["action"]
    named = event.get("signingKeyId")
    if named is not None and not (isinstance(named, str) and _KEY_ARN.fullmatch(named)):
        raise InvalidRequest("signingKeyId must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
    account = settings.service_account_id or ""

    def signer(key_id: str) -> KmsSigner:
        return KmsSigner(key_id, kms, account_id=account, clock=time.monotonic)

    if action == "status":
        out: dict[str, Any] = {"mode": "kms", "signingKeyId": settings.signing_key_id}
        out["AWSCURRENT"] = _described(signer(settings.signing_key_id).current())
        if named is not None:
            out["key"] = _described(signer(named).current())
        return out
    if action != "test":
        raise InvalidRequest(
            f"in the keyless mode the rotation function answers status and test, not {action}: "
            "aic-token rotate creates the next KMS key and moves the alias itself"
        )
    if named is None:
        raise InvalidRequest("the keyless test names the pending key: signingKeyId")
    key = signer(named).current()
    scopes = normalise_scopes(
        event.get("scopes") or " ".join(sorted(settings.allowed_scopes or ["fr:idm:*"]))
    )
    deadline = Deadline.after(10.0, time.monotonic)

    def sign() -> Assertion:
        return sign_assertion_with(
            key, settings.assertion_audience, now=time.time(), new_jti=lambda: str(uuid.uuid4())
        )

    with bounded_client.within(deadline):
        issued = endpoint.exchange(sign, scopes, deadline, attempts=2)
    return {"accepted": True, "keyArn": key.version_id, "kid": key.kid, "expiresIn": issued.expires_in}
