"""The RFC 7523 client assertion AIC expects from a service account (CONTRACT section 4).

Pure: the clock and the id generator are arguments, so tests pin both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from token_vendor.kernel.signer import b64url

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from token_vendor.kernel.signer import SigningKey

# AIC accepts any exp up to 15 minutes ahead; a short-lived assertion is worth less if it leaks.
DEFAULT_LIFETIME_SECONDS = 180
MAX_LIFETIME_SECONDS = 900


@dataclass(frozen=True)
class Assertion:
    jwt: str
    jti: str

    def __repr__(self) -> str:  # the compact JWT is a bearer credential for its lifetime
        return f"Assertion(jti={self.jti!r})"


def build_claims(
    account_id: str,
    audience: str,
    *,
    now: float,
    jti: str,
    lifetime: int = DEFAULT_LIFETIME_SECONDS,
) -> dict[str, Any]:
    if not 0 < lifetime <= MAX_LIFETIME_SECONDS:
        raise ValueError(f"assertion lifetime must be 1..{MAX_LIFETIME_SECONDS} seconds")
    issued_at = int(now)
    return {
        # RFC 7523 section 3: for a client authenticating as itself, iss and sub are both its id.
        "iss": account_id,
        "sub": account_id,
        # Section 3 item 3: the token endpoint's identity; AIC compares it exactly, port included.
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        # Section 3 item 7: AIC refuses a replayed jti, so every assertion (and every retry) gets a new one.
        "jti": jti,
    }


def sign_assertion(
    key: RSAPrivateKey,
    account_id: str,
    audience: str,
    *,
    now: float,
    new_jti: Callable[[], str],
    kid: str | None = None,
    lifetime: int = DEFAULT_LIFETIME_SECONDS,
) -> Assertion:
    import jwt  # PyJWT pulls in x509 machinery: ~50 ms of import a table-hit cold start does not need

    jti = new_jti()
    claims = build_claims(account_id, audience, now=now, jti=jti, lifetime=lifetime)
    headers: dict[str, Any] = {"typ": "JWT"}
    if kid:
        headers["kid"] = kid
    return Assertion(jwt=jwt.encode(claims, key, algorithm="RS256", headers=headers), jti=jti)


def sign_assertion_with(
    key: SigningKey,
    audience: str,
    *,
    now: float,
    new_jti: Callable[[], str],
    lifetime: int = DEFAULT_LIFETIME_SECONDS,
) -> Assertion:
    """The same assertion, signed by whatever holds the key (in memory or in KMS): the JWS compact
    serialization of RFC 7515 section 7.1, as PyJWT writes it (compact JSON, the header's keys sorted, the
    claims in their order), so both modes send the same bytes for the same key."""
    jti = new_jti()
    claims = build_claims(key.account_id, audience, now=now, jti=jti, lifetime=lifetime)
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if key.kid:
        header["kid"] = key.kid
    encoded_header = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    encoded_claims = json.dumps(claims, separators=(",", ":")).encode()
    signing_input = f"{b64url(encoded_header)}.{b64url(encoded_claims)}"
    signature = key.sign(signing_input.encode("ascii"))
    return Assertion(jwt=f"{signing_input}.{b64url(signature)}", jti=jti)
