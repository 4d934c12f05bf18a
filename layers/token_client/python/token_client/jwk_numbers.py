"""An RSA public key's identity in a JWK: its modulus and exponent (RFC 7518 section 6.3.1), never its
``kid`` (a key downloaded from AIC's console has none). Shared by ``rotate`` and ``kms_rotate``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

Numbers = tuple[int, int]


def _uint(value: Any) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError("not a base64url string")
    return int.from_bytes(base64.b64decode(value + "=" * (-len(value) % 4), b"-_", validate=True), "big")


def key_numbers(jwk: Any) -> Numbers | None:
    """An RSA public key's identity, its modulus and exponent (RFC 7518 section 6.3.1), whatever else the
    JWK carries; None for anything that is not an RSA key (it never matches)."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
        return None
    try:
        return _uint(jwk.get("n")), _uint(jwk.get("e"))
    except (ValueError, binascii.Error):
        return None


def lists(keys: list[dict[str, Any]], numbers: Numbers) -> bool:
    return any(key_numbers(k) == numbers for k in keys)
