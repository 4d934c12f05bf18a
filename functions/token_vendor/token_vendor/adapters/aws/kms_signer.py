"""Keyless signing (CONTRACT section 2, ``SIGNING_KEY_ID``): the service account's private key exists only
inside KMS, and ``kms:Sign`` signs each assertion.

Rules:
- the key is checked at first use: ``KeySpec`` RSA_2048 or larger, ``KeyUsage`` SIGN_VERIFY, enabled, and
  offering RSASSA_PKCS1_V1_5_SHA_256 (RS256); anything else is ``ConfigurationError`` naming the setting;
- the header's ``kid`` is the RFC 7638 thumbprint of the key's public part (``kms:GetPublicKey``), computed
  once per key;
- ``SIGNING_KEY_ID`` may be an alias: its target is re-resolved (``kms:DescribeKey``) at most every
  ``refresh_seconds`` and at once after AIC refused the key, so ``kms:UpdateAlias`` switches the fleet
  within 5 minutes, as a new secret version does; the resolved key ARN is the "version" a rejection is
  tied to;
- KMS refusing (access denied, disabled or pending deletion, wrong key) is ``ConfigurationError``; KMS
  throttled, failing or out of time is ``UpstreamUnavailable`` (the vend may serve stale).

``MessageType=RAW``: KMS hashes the signing input itself, so what is signed is exactly RS256 of these bytes;
an assertion's signing input is well under RAW's 4096-byte limit (checked). Nothing here holds a private key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from token_vendor.kernel.errors import ConfigurationError, UpstreamUnavailable
from token_vendor.kernel.signer import b64url_uint, jwk_thumbprint

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

logger = logging.getLogger("token_vendor").getChild(__name__)

SETTING = "SIGNING_KEY_ID"
ALGORITHM: Final = "RSASSA_PKCS1_V1_5_SHA_256"  # RS256 (RFC 7518 section 3.3)
KEY_SPECS = frozenset({"RSA_2048", "RSA_3072", "RSA_4096"})
RAW_LIMIT = 4096  # bytes kms:Sign takes with MessageType RAW
REFRESH_SECONDS = 300.0
RETRY_AFTER_FAILURE_SECONDS = 30.0
# What can pass by itself; every other refusal needs an operator (a grant, the key, the setting).
_TRANSIENT = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
    }
)


@dataclass(frozen=True)
class KmsKey:
    """One KMS key version (``signer.SigningKey``): its ARN, public JWK and thumbprint; no private part."""

    account_id: str
    kid: str
    version_id: str  # the key's ARN: what the alias pointed at when it was resolved
    public_jwk: dict[str, str]
    _sign: Callable[[str, bytes], bytes] = field(repr=False, compare=False)

    def sign(self, signing_input: bytes) -> bytes:
        if len(signing_input) > RAW_LIMIT:
            raise ConfigurationError(
                f"the assertion is longer than kms:Sign takes ({RAW_LIMIT} bytes): shorten "
                "ASSERTION_AUDIENCE or SERVICE_ACCOUNT_ID"
            )
        return self._sign(self.version_id, signing_input)


def _refusal(exc: Exception, action: str) -> ConfigurationError | UpstreamUnavailable:
    """A KMS failure as the vend's error: transient ones can pass, the rest need an operator."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "") or "unknown"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _TRANSIENT or status >= 500:
            return UpstreamUnavailable(f"KMS cannot {action} now ({code})")
        return ConfigurationError(f"setting {SETTING}: KMS refused to {action} ({code})")
    return UpstreamUnavailable(f"KMS cannot {action} now ({type(exc).__name__})")


def public_jwk_from_der(der: bytes) -> dict[str, str]:
    """The RSA public JWK (with its thumbprint as ``kid``) of a DER SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        public = serialization.load_der_public_key(der)
    except ValueError as exc:
        raise ConfigurationError(f"setting {SETTING}: KMS returned a public key that does not parse") from exc
    if not isinstance(public, rsa.RSAPublicKey):
        raise ConfigurationError(f"setting {SETTING} names a key that is not RSA")
    numbers = public.public_numbers()
    jwk = {"kty": "RSA", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}
    return {**jwk, "kid": jwk_thumbprint(jwk), "alg": "RS256", "use": "sig"}


def check_key_metadata(metadata: Any) -> str:
    """The key's ARN, if the key can sign RS256 assertions; else ``ConfigurationError`` saying why."""
    spec = metadata.get("KeySpec") or metadata.get("CustomerMasterKeySpec") or "unknown"
    if spec not in KEY_SPECS:
        raise ConfigurationError(f"setting {SETTING} names a {spec} key; RSA_2048 or larger is required")
    if metadata.get("KeyUsage") != "SIGN_VERIFY":
        raise ConfigurationError(f"setting {SETTING} names a key whose KeyUsage is not SIGN_VERIFY")
    if not metadata.get("Enabled", False) or metadata.get("KeyState", "Enabled") != "Enabled":
        state = metadata.get("KeyState", "Disabled")
        raise ConfigurationError(f"setting {SETTING} names a key that is not enabled ({state})")
    algorithms = metadata.get("SigningAlgorithms") or [ALGORITHM]
    if ALGORITHM not in algorithms:
        raise ConfigurationError(f"setting {SETTING} names a key that does not offer {ALGORITHM}")
    return str(metadata["Arn"])


class KmsSigner:
    """Serves the current KMS key (``signer.Signer``); re-resolves ``key_id`` at most every
    ``refresh_seconds``, or sooner (``max_age``) while AIC's refusal of the key in use is remembered."""

    def __init__(
        self,
        key_id: str,
        client: KMSClient | Callable[[], KMSClient],
        *,
        account_id: str,
        clock: Callable[[], float],
        refresh_seconds: float | None = None,
    ) -> None:
        self._key_id = key_id
        self._client_or_factory = client
        self._client: KMSClient | None = None
        self._account_id = account_id
        self._clock = clock
        self._refresh_seconds = REFRESH_SECONDS if refresh_seconds is None else refresh_seconds
        self._lock = threading.Lock()
        self._key: KmsKey | None = None
        self._read_at = float("-inf")

    def current(self, max_age: float | None = None) -> KmsKey:
        limit = self._refresh_seconds if max_age is None else min(max_age, self._refresh_seconds)
        key = self._key
        if key is not None and self._clock() - self._read_at < limit:
            return key
        return self._resolve()

    def loaded_version(self) -> str | None:
        key = self._key
        return key.version_id if key is not None else None

    def refresh_now(self) -> KmsKey:
        return self._resolve()

    def _resolve(self) -> KmsKey:
        # KMS is called outside the lock: a slow or stalled call must not hold the other threads of this
        # container past their deadlines (envelope.py does the same). Two
        # threads may then both resolve the alias; the lock guards only the state. An answer is as old as
        # its question: it is stamped with the time it was asked, and never replaces an answer to a later
        # question (an alias resolved before a switch, answered after it, must not pin the old key).
        asked_at = self._clock()
        try:
            metadata = self._kms_client().describe_key(KeyId=self._key_id)["KeyMetadata"]
        except (ClientError, BotoCoreError) as exc:
            error = _refusal(exc, "describe the signing key")
            with self._lock:
                kept = self._key
                if isinstance(error, UpstreamUnavailable) and kept is not None:
                    self._read_at = self._clock() - self._refresh_seconds + RETRY_AFTER_FAILURE_SECONDS
            if isinstance(error, UpstreamUnavailable) and kept is not None:
                logger.warning("signing key re-check failed; kept the key", extra={"problem": error.message})
                return kept
            raise error from exc
        arn = check_key_metadata(metadata)
        with self._lock:
            known = self._key
            if known is not None and known.version_id == arn:
                self._read_at = max(self._read_at, asked_at)
                return known
        try:
            der = self._kms_client().get_public_key(KeyId=arn)["PublicKey"]
        except (ClientError, BotoCoreError) as exc:
            raise _refusal(exc, "give the signing key's public key") from exc
        jwk = public_jwk_from_der(der)
        key = KmsKey(self._account_id, jwk["kid"], arn, jwk, self._sign)
        with self._lock:
            if self._key is not None and asked_at < self._read_at:
                return self._key  # a later question was answered first: its answer stands
            switched = self._key is not None and self._key.version_id != arn
            self._key, self._read_at = key, asked_at
        if switched:
            logger.info("signing key switched", extra={"signing_key": arn, "kid": jwk["kid"]})
        return key

    def _sign(self, key_arn: str, signing_input: bytes) -> bytes:
        try:
            response = self._kms_client().sign(
                KeyId=key_arn, Message=signing_input, MessageType="RAW", SigningAlgorithm=ALGORITHM
            )
        except (ClientError, BotoCoreError) as exc:
            raise _refusal(exc, "sign with the signing key") from exc
        return bytes(response["Signature"])

    def _kms_client(self) -> KMSClient:
        if self._client is None:
            source = self._client_or_factory
            self._client = source() if callable(source) else source
        return self._client
