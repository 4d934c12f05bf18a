"""The service account's private key, read from Secrets Manager (CONTRACT section 3).

Loading an RSA key validates it (tens of milliseconds); signing with a loaded key costs a fraction of a
millisecond. So the key object is cached per secret version, and the secret is re-read at most every
``refresh_seconds`` to pick up a rotation without a redeploy. Nothing here ever puts a key member's value
into a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from token_vendor.kernel.errors import ConfigurationError, UpstreamUnavailable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = logging.getLogger("token_vendor").getChild(__name__)

REFRESH_SECONDS = 300.0
RETRY_AFTER_FAILURE_SECONDS = 30.0  # a failed re-read is tried again sooner than the full interval
MIN_KEY_BITS = 2048
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")
_CONFIG_CODES = {
    "ResourceNotFoundException": "was not found",
    "AccessDeniedException": "cannot be read by this function (access denied)",
    "DecryptionFailure": "cannot be decrypted with its KMS key",
    "InvalidRequestException": "cannot be read now (deleted or not yet available)",
    "InvalidParameterException": "has an invalid name or ARN",
}


@dataclass(frozen=True)
class ServiceAccountKey:
    account_id: str
    private_key: rsa.RSAPrivateKey
    kid: str | None
    version_id: str

    def __repr__(self) -> str:
        return f"ServiceAccountKey({self.account_id!r}, kid={self.kid!r}, version={self.version_id!r})"

    def sign(self, signing_input: bytes) -> bytes:
        """RS256 in memory (``signer.SigningKey``): about 0.3 ms, no I/O."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def _b64url_int(jwk: dict[str, Any], member: str) -> int:
    value = jwk.get(member)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"secret's JWK member '{member}' is missing or not a string")
    if not _BASE64URL.fullmatch(value):
        raise ConfigurationError(f"secret's JWK member '{member}' is not base64url")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"secret's JWK member '{member}' is not base64url") from exc
    return int.from_bytes(raw, "big")


def key_from_jwk(jwk: object) -> tuple[rsa.RSAPrivateKey, str | None]:
    # Imported here: a cold start served from the cache never loads a key (~20 ms of imports).
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not isinstance(jwk, dict):
        raise ConfigurationError("secret's 'jwk' member must be a JSON object")
    if jwk.get("kty") != "RSA":
        raise ConfigurationError("secret's JWK is not an RSA key (kty must be 'RSA')")
    if "d" not in jwk:
        raise ConfigurationError("secret's JWK has no private part (member 'd' is missing)")
    n, e, d = (_b64url_int(jwk, m) for m in ("n", "e", "d"))
    missing_crt = [m for m in _PRIVATE_MEMBERS[1:] if m not in jwk]
    if missing_crt and len(missing_crt) != len(_PRIVATE_MEMBERS) - 1:
        raise ConfigurationError(
            f"secret's JWK lacks member(s) {', '.join(missing_crt)} (give all of p q dp dq qi, or none)"
        )
    try:
        if missing_crt:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
            dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
        else:
            p, q, dp, dq, qi = (_b64url_int(jwk, m) for m in _PRIVATE_MEMBERS[1:])
        numbers = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, rsa.RSAPublicNumbers(e, n))
        key = numbers.private_key()
    except (ValueError, TypeError) as exc:  # inconsistent members; the text names no value
        raise ConfigurationError("secret's JWK is not a consistent RSA private key") from exc
    kid = jwk.get("kid")
    return key, kid if isinstance(kid, str) and kid else None


def key_from_pem(pem: str) -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("secret's PEM is not an unencrypted private key (PKCS#1 or PKCS#8)") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("secret's PEM key is not an RSA key")
    return key


def parse_secret(secret: str, version_id: str, env_account_id: str | None) -> ServiceAccountKey:
    """Accept every form of CONTRACT section 3; errors name the problem, never a value."""
    text = secret.strip()
    kid: str | None = None
    if text.startswith("-----BEGIN"):
        key = key_from_pem(text)
        account_id = env_account_id
    elif text.startswith(("{", "[")):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"secret is not valid JSON (error at character {exc.pos})") from exc
        if not isinstance(document, dict):
            raise ConfigurationError("secret JSON must be an object")
        if "kty" in document:  # the bare key.jwk the AIC console downloads
            key, kid = key_from_jwk(document)
            account_id = env_account_id
        else:
            account_id = document.get("serviceAccountId")
            if not isinstance(account_id, str) or not account_id.strip():
                raise ConfigurationError("secret JSON lacks 'serviceAccountId' (a non-empty string)")
            if "jwk" in document:
                key, kid = key_from_jwk(document["jwk"])
            elif isinstance(document.get("privateKeyPem"), str):
                key = key_from_pem(document["privateKeyPem"])
            else:
                raise ConfigurationError("secret JSON lacks 'jwk' (or 'privateKeyPem')")
    else:
        raise ConfigurationError("secret is neither JSON nor a PEM private key")
    if not account_id:
        raise ConfigurationError(
            "service account id unknown: the secret holds a bare key, so set SERVICE_ACCOUNT_ID"
        )
    if key.key_size < MIN_KEY_BITS:
        raise ConfigurationError(
            f"secret's RSA key has {key.key_size} bits; at least {MIN_KEY_BITS} are required"
        )
    return ServiceAccountKey(account_id.strip(), key, kid, version_id)


class KeySource:
    """Serves the current key; re-reads the secret at most every ``refresh_seconds``."""

    def __init__(
        self,
        secret_id: str,
        client: SecretsManagerClient | Callable[[], SecretsManagerClient],
        *,
        clock: Callable[[], float],
        env_account_id: str | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._secret_id = secret_id
        self._client_or_factory = client
        self._client: SecretsManagerClient | None = None
        self._clock = clock
        self._env_account_id = env_account_id
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._key: ServiceAccountKey | None = None
        self._read_at = float("-inf")

    def current(self, max_age: float | None = None) -> ServiceAccountKey:
        """The key, re-read when older than ``refresh_seconds`` (or ``max_age``, when AIC refused the key
        in use: a rotation then shows within seconds, not minutes)."""
        limit = self._refresh_seconds if max_age is None else min(max_age, self._refresh_seconds)
        key = self._key
        if key is not None and self._clock() - self._read_at < limit:
            return key
        with self._lock:
            if self._key is not None and self._clock() - self._read_at < limit:
                return self._key
            return self._reload()

    def loaded_version(self) -> str | None:
        """The secret version of the key in memory, without any I/O."""
        key = self._key
        return key.version_id if key is not None else None

    def refresh_now(self) -> ServiceAccountKey:
        """Re-read at once (after AIC rejected the key: a rotation may have just happened)."""
        with self._lock:
            return self._reload()

    def _reload(self) -> ServiceAccountKey:
        try:
            # AWSCURRENT named: the default on AWS, and what moto needs after a stage move (it keeps its own)
            response = self._secrets_manager().get_secret_value(
                SecretId=self._secret_id, VersionStage="AWSCURRENT"
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _CONFIG_CODES:
                problem = f"secret {self._secret_id} {_CONFIG_CODES[code]}"
                logger.error(  # an operator must act: a wrong id, a missing grant, a disabled key
                    "service account secret cannot be read", extra={"problem": problem, "code": code}
                )
                raise ConfigurationError(problem) from exc
            return self._keep_or_fail(f"Secrets Manager error {code or 'unknown'}", exc)
        except BotoCoreError as exc:
            return self._keep_or_fail(f"Secrets Manager unreachable ({type(exc).__name__})", exc)
        version = response.get("VersionId", "")
        self._read_at = self._clock()
        if self._key is not None and version and version == self._key.version_id:
            return self._key
        secret = response.get("SecretString")
        if not isinstance(secret, str):
            raise ConfigurationError(
                f"secret {self._secret_id} has no SecretString (binary secrets are not read)"
            )
        try:
            key = parse_secret(secret, version, self._env_account_id)
        except ConfigurationError as exc:
            logger.error("service account secret is malformed", extra={"problem": exc.message})
            if self._key is not None:  # a bad rotation must not stop the key that works; the error alerts
                return self._key
            raise
        if self._key is not None:
            logger.info("service account key rotated", extra={"secret_version": version})
        self._key = key
        return key

    def _secrets_manager(self) -> SecretsManagerClient:
        if self._client is None:
            source = self._client_or_factory
            self._client = source() if callable(source) else source
        return self._client

    def _keep_or_fail(self, problem: str, exc: Exception) -> ServiceAccountKey:
        if self._key is not None:  # a transient failure must not stop a working key
            logger.warning("secret re-read failed; keeping the key in use", extra={"problem": problem})
            self._read_at = self._clock() - self._refresh_seconds + RETRY_AFTER_FAILURE_SECONDS
            return self._key
        raise UpstreamUnavailable(f"cannot read the service account key now: {problem}") from exc
