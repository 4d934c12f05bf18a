"""Issue 21, the client's side: the proof it signs, its audience, and its reuse for up to 4 minutes."""

from __future__ import annotations

import pytest
from botocore.session import Session

from token_client.identity import REUSE_SECONDS, IdentityProver, audience_for
from token_vendor.adapters.aws.identity_proof import parse_proof


@pytest.mark.parametrize(
    ("reference", "audience"),
    [
        ("token-vendor", "token-vendor"),
        ("arn:aws:lambda:eu-west-2:111122223333:function:vendor-Fn-1:$LATEST", "vendor-Fn-1"),
        ("111122223333:function:vendor", "vendor"),
    ],
)
def test_the_audience_is_the_functions_name(
    reference: str, audience: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDENTITY_AUDIENCE", raising=False)
    assert audience_for(reference) == audience
    monkeypatch.setenv("IDENTITY_AUDIENCE", "shared")
    assert audience_for(reference) == "shared"


def _prover(now: list[float], url: str = "http://127.0.0.1:4566/") -> IdentityProver:
    session = Session()
    session.set_credentials("AKIDEXAMPLE", "secret", "session-token")
    return IdentityProver(session, "eu-west-2", "token-vendor", sts_url=url, clock=lambda: now[0])


def test_a_proof_is_reused_for_four_minutes_then_signed_again() -> None:
    now = [1_796_040_000.0]
    prover = _prover(now)
    first = prover.proof()
    now[0] += REUSE_SECONDS - 1
    assert prover.proof() is first
    now[0] += 2
    assert prover.proof() is not first


def test_the_proof_is_one_the_vendor_accepts_host_and_port_included() -> None:
    import time

    proof = _prover([time.time()]).proof()

    assert proof["headers"]["Host"] == "127.0.0.1:4566"
    parsed = parse_proof(proof, sts_url="http://127.0.0.1:4566/", audience="token-vendor", now=time.time())
    assert parsed.url == "http://127.0.0.1:4566/"
    assert "x-token-vendor-audience" in proof["headers"]["Authorization"]
