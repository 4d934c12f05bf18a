from __future__ import annotations

import itertools
from typing import Any

import jwt
import pytest

from token_vendor.adapters.aic.assertion import build_claims, sign_assertion

AUD = "https://tenant.example.com:443/am/oauth2/access_token"


def test_claims_are_what_aic_documents() -> None:
    claims = build_claims("acct-1", AUD, now=1_800_000_000.7, jti="j-1")

    assert claims == {
        "iss": "acct-1",
        "sub": "acct-1",
        "aud": AUD,
        "iat": 1_800_000_000,
        "exp": 1_800_000_180,
        "jti": "j-1",
    }


@pytest.mark.parametrize("lifetime", [0, 901, -5])
def test_lifetime_stays_within_aics_15_minutes(lifetime: int) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        build_claims("a", AUD, now=0, jti="j", lifetime=lifetime)


def test_signed_assertion_verifies_with_the_public_key(rsa_key: Any) -> None:
    counter = itertools.count()
    make_jti = lambda: f"jti-{next(counter)}"  # noqa: E731
    now = 1_700_000_000

    first = sign_assertion(rsa_key, "acct-1", AUD, now=now, new_jti=make_jti)
    second = sign_assertion(rsa_key, "acct-1", AUD, now=now, new_jti=make_jti)

    claims = jwt.decode(
        first.jwt, rsa_key.public_key(), algorithms=["RS256"], audience=AUD, options={"verify_exp": False}
    )
    assert claims["iss"] == claims["sub"] == "acct-1"
    assert claims["exp"] - now <= 900
    assert (first.jti, second.jti) == ("jti-0", "jti-1")
    assert jwt.get_unverified_header(first.jwt) == {"alg": "RS256", "typ": "JWT"}


def test_kid_is_sent_when_the_jwk_has_one(rsa_key: Any) -> None:
    signed = sign_assertion(rsa_key, "a", AUD, now=0, new_jti=lambda: "j", kid="key-2026")
    assert jwt.get_unverified_header(signed.jwt)["kid"] == "key-2026"


def test_repr_hides_the_compact_jwt(rsa_key: Any) -> None:
    signed = sign_assertion(rsa_key, "a", AUD, now=0, new_jti=lambda: "j")
    assert signed.jwt not in repr(signed)
