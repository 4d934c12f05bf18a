"""Interoperability with the ``jose`` command-line tool that AIC's own docs use (Debian package ``jose``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from local.stack import private_jwk, public_jwk
from token_vendor.adapters.aic.assertion import sign_assertion

JOSE = shutil.which("jose")
needs_jose = pytest.mark.skipif(
    JOSE is None, reason="the 'jose' CLI is not installed (apt-get install jose; .ci/run installs it)"
)
AUD = "https://openam-example.id.forgerock.io:443/am/oauth2/access_token"


@needs_jose
def test_our_assertion_verifies_with_jose(rsa_key: Any, tmp_path: Path) -> None:
    signed = sign_assertion(rsa_key, "acct-1", AUD, now=time.time(), new_jti=lambda: str(uuid.uuid4()))
    (tmp_path / "jwt.txt").write_text(signed.jwt)
    (tmp_path / "pub.jwk").write_text(json.dumps({**public_jwk(rsa_key), "alg": "RS256"}))

    result = subprocess.run(
        [JOSE, "jws", "ver", "-i", str(tmp_path / "jwt.txt"), "-k", str(tmp_path / "pub.jwk"), "-O", "-"],
        capture_output=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr.decode()
    claims = json.loads(result.stdout)
    assert claims["iss"] == claims["sub"] == "acct-1"
    assert claims["aud"] == AUD


@needs_jose
def test_a_tampered_assertion_fails_with_jose(rsa_key: Any, tmp_path: Path) -> None:
    signed = sign_assertion(rsa_key, "acct-1", AUD, now=time.time(), new_jti=lambda: "j")
    payload = signed.jwt.split(".")[1]
    forged = signed.jwt.replace(payload, payload[:-2] + ("AA" if not payload.endswith("AA") else "BB"))
    (tmp_path / "jwt.txt").write_text(forged)
    (tmp_path / "pub.jwk").write_text(json.dumps({**public_jwk(rsa_key), "alg": "RS256"}))

    result = subprocess.run(
        [JOSE, "jws", "ver", "-i", str(tmp_path / "jwt.txt"), "-k", str(tmp_path / "pub.jwk")],
        capture_output=True,
        check=False,
    )
    assert result.returncode != 0


@needs_jose
def test_the_vendor_accepts_the_key_jwk_that_jose_generates(tmp_path: Path) -> None:
    """A key made the way AIC's docs show a JWK (``jose jwk gen``) loads as a bare key.jwk secret."""
    from token_vendor.adapters.aws.key_source import parse_secret

    result = subprocess.run([JOSE, "jwk", "gen", "-i", '{"alg":"RS256"}'], capture_output=True, check=True)
    jwk = json.loads(result.stdout)
    from tests.leak_canary import CANARY

    for member in ("d", "p", "q", "dp", "dq", "qi"):
        CANARY.add_secret(jwk[member], f"private JWK member '{member}' (jose)")

    key = parse_secret(json.dumps(jwk), "v1", "acct-1")
    assert key.private_key.key_size >= 2048
    assert set(private_jwk(key.private_key)) == {"d", "dp", "dq", "e", "kty", "n", "p", "q", "qi"}
