"""Key rotation inside AWS (issue 26; CONTRACT section 9): the private key is born here and never leaves.

``rotation_handler`` is the opt-in ``KeyRotationFunction``: it holds ``secretsmanager:PutSecretValue`` and
``UpdateSecretVersionStage`` on the one secret (the vendor's role gets nothing new). ``aic-token rotate``
drives it, step by step, each step idempotent:

- ``create``: a new RSA key pair as the secret's ``AWSPENDING`` version, in the current version's format
  (``serviceAccountId`` + ``jwk`` with a ``kid``); answers only the public JWK. An existing pending
  version is answered again, never replaced.
- ``test``: one exchange at AIC with the pending key and the account's scopes. A pass puts the staging
  label ``TESTED_STAGE`` on the pending version (a failure takes it off), so the pass is recorded on the
  version it proved, in the secret itself (docs/decisions.md).
- ``finish``: ``AWSPENDING`` becomes ``AWSCURRENT``; Secrets Manager keeps the old one as ``AWSPREVIOUS``.
  Refused unless the pending version carries ``TESTED_STAGE``: a key AIC never accepted is never promoted.
  The vendor picks the new version up within 5 minutes (CONTRACT section 3), at once after a refusal.
- ``status``: the current, pending and previous versions with their key ids and public numbers (``n``,
  ``e``: what ``aic-token rotate`` matches AIC's keys by), and whether the pending one passed a test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from token_vendor.adapters.aic.assertion import sign_assertion
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws.key_source import ServiceAccountKey, parse_secret
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import (
    ConfigurationError,
    InvalidRequest,
    TokenVendorError,
    UpstreamUnavailable,
)
from token_vendor.kernel.scopes import normalise_scopes
from token_vendor.kernel.settings import load_settings

ACTIONS = ("status", "create", "test", "finish")
# A custom staging label, "AIC accepted this pending key": a label sits on one version at a time, so it names
# the version the test proved; moving it needs only UpdateSecretVersionStage, which the function holds.
TESTED_STAGE = "AICTESTED"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def thumbprint(public: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), the key id AIC and jose tools compute the same way."""
    canonical = json.dumps({k: public[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def new_key_pair() -> tuple[dict[str, str], dict[str, str]]:
    """A 2048-bit RSA key as (private JWK, public JWK), both with the thumbprint as ``kid``."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.private_numbers()
    public = {"kty": "RSA", "n": _b64(numbers.public_numbers.n), "e": _b64(numbers.public_numbers.e)}
    kid = thumbprint(public)
    public.update(kid=kid, alg="RS256", use="sig")
    private = {
        **public,
        "d": _b64(numbers.d),
        "p": _b64(numbers.p),
        "q": _b64(numbers.q),
        "dp": _b64(numbers.dmp1),
        "dq": _b64(numbers.dmq1),
        "qi": _b64(numbers.iqmp),
    }
    return private, public


def public_of(key: ServiceAccountKey) -> dict[str, str]:
    numbers = key.private_key.public_key().public_numbers()
    public = {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e)}
    public.update(kid=key.kid or thumbprint(public), alg="RS256", use="sig")
    return public


class Rotation:
    """The steps, over one secret (a Secrets Manager client injected)."""

    def __init__(self, secret_id: str, client: Any, *, env_account_id: str | None = None) -> None:
        self._secret = secret_id
        self._client = client
        self._env_account_id = env_account_id

    def _stages(self) -> dict[str, str]:
        """Stage -> version id."""
        try:
            described = self._client.describe_secret(SecretId=self._secret)
        except (ClientError, BotoCoreError) as exc:
            raise ConfigurationError(
                f"secret {self._secret} cannot be described ({type(exc).__name__})"
            ) from exc
        stages: dict[str, str] = {}
        for version, labels in (described.get("VersionIdsToStages") or {}).items():
            for label in labels:
                stages[label] = version
        return stages

    def _key(self, stage: str) -> ServiceAccountKey:
        response = self._client.get_secret_value(SecretId=self._secret, VersionStage=stage)
        return parse_secret(response["SecretString"], response["VersionId"], self._env_account_id)

    def status(self) -> dict[str, Any]:
        stages = self._stages()
        out: dict[str, Any] = {}
        for stage in ("AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"):
            if stage in stages and not (stage == "AWSPENDING" and stages[stage] == stages.get("AWSCURRENT")):
                key = self._key(stage)
                public = public_of(key)
                out[stage] = {
                    "versionId": key.version_id,
                    "kid": public["kid"],
                    "publicJwk": {k: public[k] for k in ("kty", "n", "e", "kid")},
                    "account": key.account_id,
                }
        if "AWSPENDING" in out:
            out["AWSPENDING"]["tested"] = stages.get(TESTED_STAGE) == stages["AWSPENDING"]
        return out

    def _label(self, stages: dict[str, str], version: str, *, tested: bool) -> None:
        """Put ``TESTED_STAGE`` on ``version`` (moving it off whichever version held it), or take it off."""
        holder = stages.get(TESTED_STAGE)
        if tested and holder != version:
            moved = {"RemoveFromVersionId": holder} if holder else {}
            self._client.update_secret_version_stage(
                SecretId=self._secret, VersionStage=TESTED_STAGE, MoveToVersionId=version, **moved
            )
        elif not tested and holder == version:
            self._client.update_secret_version_stage(
                SecretId=self._secret, VersionStage=TESTED_STAGE, RemoveFromVersionId=version
            )

    def create(self) -> dict[str, Any]:
        stages = self._stages()
        pending = stages.get("AWSPENDING")
        if pending is not None and pending != stages.get("AWSCURRENT"):
            key = self._key("AWSPENDING")  # resumed: the same pending key, never a second one
            return {"created": False, "versionId": key.version_id, "publicJwk": public_of(key)}
        current = self._key("AWSCURRENT")
        private, public = new_key_pair()
        secret = json.dumps({"serviceAccountId": current.account_id, "jwk": private})
        response = self._client.put_secret_value(
            SecretId=self._secret,
            ClientRequestToken=str(uuid.uuid4()),
            SecretString=secret,
            VersionStages=["AWSPENDING"],
        )
        return {"created": True, "versionId": response["VersionId"], "publicJwk": public}

    def test(self, endpoint: TokenEndpoint, audience: str, scopes: tuple[str, ...]) -> dict[str, Any]:
        stages = self._stages()
        if "AWSPENDING" not in stages or stages["AWSPENDING"] == stages.get("AWSCURRENT"):
            raise InvalidRequest("there is no pending key to test: run the create step first")
        key = self._key("AWSPENDING")

        def sign() -> Any:
            return sign_assertion(
                key.private_key,
                key.account_id,
                audience,
                now=time.time(),
                new_jti=lambda: str(uuid.uuid4()),
                kid=key.kid,
            )

        try:
            issued = endpoint.exchange(sign, scopes, Deadline.after(10.0, time.monotonic), attempts=2)
        except TokenVendorError:
            self._label(stages, key.version_id, tested=False)  # a pass that no longer holds is forgotten
            raise
        self._label(stages, key.version_id, tested=True)
        return {"accepted": True, "versionId": key.version_id, "expiresIn": issued.expires_in}

    def finish(self) -> dict[str, Any]:
        stages = self._stages()
        pending, current = stages.get("AWSPENDING"), stages.get("AWSCURRENT")
        if pending is None or pending == current:
            return {"promoted": False, "current": current}  # already done (or nothing to do)
        if stages.get(TESTED_STAGE) != pending:
            raise InvalidRequest(
                f"the pending key (secret version {pending}) has not passed a test at AIC: run the test "
                "step first (aic-token rotate does); it stays pending and AWSCURRENT is unchanged"
            )
        self._client.update_secret_version_stage(
            SecretId=self._secret,
            VersionStage="AWSCURRENT",
            MoveToVersionId=pending,
            RemoveFromVersionId=current,
        )
        self._client.update_secret_version_stage(
            SecretId=self._secret, VersionStage="AWSPENDING", RemoveFromVersionId=pending
        )
        self._label(stages, pending, tested=False)  # the label marks a pending version only
        return {"promoted": True, "current": pending, "previous": current}


_clients: dict[str, Any] = {}  # one per execution environment, created on first use


def _secrets_manager() -> Any:
    if "secretsmanager" not in _clients:
        _clients["secretsmanager"] = botocore.session.get_session().create_client("secretsmanager")
    return _clients["secretsmanager"]


def _kms() -> Any:
    if "kms" not in _clients:
        _clients["kms"] = botocore.session.get_session().create_client("kms")
    return _clients["kms"]


def _endpoint(url: str) -> TokenEndpoint:
    if url not in _clients:
        _clients[url] = TokenEndpoint(url)
    endpoint: TokenEndpoint = _clients[url]
    return endpoint


def rotation_handler(event: Any, context: Any) -> dict[str, Any]:
    """``{"action": "status" | "create" | "test" | "finish"}``; answers public material only."""
    if (
        not isinstance(event, dict)
        or event.get("action") not in ACTIONS
        or set(event) - {"action", "scopes", "signingKeyId"}
    ):
        raise InvalidRequest(f'the rotation function takes {{"action": one of {list(ACTIONS)}}}')
    settings = load_settings(os.environ)
    if settings.signing_key_id:  # keyless (issue 35): KMS keys, not secret versions
        from token_vendor.kms_rotation import keyless_step

        return keyless_step(event, settings, _kms(), _endpoint(settings.token_endpoint_url))
    if "signingKeyId" in event or settings.secret_id is None:
        raise InvalidRequest(
            "signingKeyId is for the keyless mode (SIGNING_KEY_ID); this stack uses a secret"
        )
    rotation = Rotation(settings.secret_id, _secrets_manager(), env_account_id=settings.service_account_id)
    action = event["action"]
    try:
        if action == "status":
            return rotation.status()
        if action == "create":
            return rotation.create()
        if action == "finish":
            return rotation.finish()
        scopes = normalise_scopes(
            event.get("scopes") or " ".join(sorted(settings.allowed_scopes or ["fr:idm:*"]))
        )
        return rotation.test(_endpoint(settings.token_endpoint_url), settings.assertion_audience, scopes)
    except TokenVendorError:
        raise
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamUnavailable(f"Secrets Manager failed during {action} ({type(exc).__name__})") from exc
