"""What signs the assertion (CONTRACT section 4): the small interface both signing modes implement.

Two sources serve a ``SigningKey``: ``key_source.KeySource`` (the private key read from Secrets Manager, kept
in memory) and ``kms_signer.KmsSigner`` (keyless: the private key never leaves KMS, ``kms:Sign`` signs). The
minter sees only this interface, so it holds no key material in the keyless mode.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Protocol


class SigningKey(Protocol):
    """One key version: who it signs for, the header's ``kid``, and the version a rejection is tied to."""

    @property
    def account_id(self) -> str: ...

    @property
    def kid(self) -> str | None: ...

    @property
    def version_id(self) -> str: ...

    def sign(self, signing_input: bytes) -> bytes:
        """The RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of a JWS signing input. AWS calls inside
        end by the vend's deadline (``bounded_client.within``), like every other AWS call of the vend."""
        ...


class Signer(Protocol):
    """Serves the current key; re-checks the source at most every few minutes (a rotation shows)."""

    def current(self, max_age: float | None = None) -> SigningKey: ...

    def refresh_now(self) -> SigningKey: ...

    def loaded_version(self) -> str | None: ...


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_uint(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8 or 1, "big"))


def jwk_thumbprint(public: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an RSA public JWK: the members e, kty, n in that order."""
    canonical = json.dumps({k: public[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())
