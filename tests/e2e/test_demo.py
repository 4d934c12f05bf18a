"""``make run``'s demo, run as a user would (a fresh process), locally and pointed at a "real" tenant."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack, private_jwk, public_jwk

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.demo", "--once"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **env},
    )


def test_the_demo_vends_three_ways_with_one_exchange_and_prints_no_token() -> None:
    result = _demo({})

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3 users returned" in out
    assert "same token as above: True" in out
    assert "printed 'Authorization: Bearer <" in out
    assert "exchanges at AIC   1 (every caller above shared one token)" in out
    assert "TokenClient.for_function fingerprint" in out
    assert "a refused request  raises InvalidScope" in out
    # Issue 21: a Lambda caller that proves its identity gets its policy's scopes; without a proof, not.
    assert "fr:am:* with proof served (sts:GetCallerIdentity checked by the local STS)" in out
    assert "fr:am:* no proof   raises AccessDenied (unproven: DIRECT_INVOKE_SCOPES=fr:idm:*)" in out
    # Issue 11: revoke -> 401 -> report -> one fresh token, shared with the caller that reports next.
    assert "IDM answered 401; reported it (TokenClient.call); got" in out
    assert "from 1 exchange; IDM answered 200" in out
    assert "0 more exchanges; IDM answered 200" in out
    assert "eyJ0eXAi" not in out + result.stderr  # the stand-in's tokens all start so
    # Issue 20: what a client outside the demo needs.
    assert re.search(r"REST API front     http://127\.0\.0\.1:[0-9]+/v1/token", out)
    assert re.search(r"function URL front http://127\.0\.0\.1:[0-9]+/token", out)
    assert "cache table        token-vendor-cache" in out
    assert "AWS_ACCESS_KEY_ID=ASIALOCALREPORTING01" in out
    assert "--payload fileb://request.json out.json" in out
    assert "AWS_ENDPOINT_URL_STS=http://127.0.0.1:" in out  # the client's proof must name the local STS


def test_the_demo_can_be_pointed_at_a_tenant_on_purpose(
    fresh_stack: LocalStack, other_rsa_key: Any, tmp_path: Path
) -> None:
    """The 'tenant' here is the session's stand-in, reached as the demo would reach a real one."""
    account = str(uuid.uuid4())
    fresh_stack.standin.register_account(account, [public_jwk(other_rsa_key)], ["fr:idm:*"])
    key_file = tmp_path / "key.jwk"
    key_file.write_text(json.dumps(private_jwk(other_rsa_key)))

    result = _demo(
        {
            "AIC_TENANT_FQDN": "openam-example-ew2.id.forgerock.io",
            "AIC_SERVICE_ACCOUNT_ID": account,
            "AIC_KEY_FILE": str(key_file),
            "AIC_TOKEN_ENDPOINT_URL": fresh_stack.standin.token_url,
        }
    )

    assert result.returncode == 0, result.stderr
    assert f"AIC (your tenant)  {fresh_stack.standin.token_url}" in result.stdout
    assert "3 users returned" in result.stdout
    assert fresh_stack.standin.exchanges == 1  # one token, shared by all three callers


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"AIC_TENANT_FQDN": "openam-example.id.forgerock.io"}, "AIC_SERVICE_ACCOUNT_ID and AIC_KEY_FILE"),
        (
            {
                "AIC_TENANT_FQDN": "https://openam-example.id.forgerock.io/am",
                "AIC_SERVICE_ACCOUNT_ID": "x",
                "AIC_KEY_FILE": "key.jwk",
            },
            "AIC_TENANT_FQDN",
        ),
        (
            {
                "AIC_TENANT_FQDN": "openam-example.id.forgerock.io",
                "AIC_SERVICE_ACCOUNT_ID": "x",
                "AIC_KEY_FILE": "/no/such/key.jwk",
            },
            "No such file",
        ),
    ],
    ids=["missing variables", "a URL for a host", "a missing key file"],
)
def test_a_real_tenant_typo_is_one_line_and_exit_2(env: dict[str, str], says: str) -> None:
    """Issue 22: the real-tenant demo printed a traceback on a typo or a missing variable."""
    result = _demo(env)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("refused key", "UpstreamRejected"),
        ("no fr:idm:*", "fr:idm:*"),
        ("unreachable tenant", "UpstreamUnavailable"),
    ],
)
def test_a_real_tenant_failure_is_one_line_not_a_traceback(
    case: str, says: str, fresh_stack: LocalStack, rsa_key: Any, other_rsa_key: Any, tmp_path: Path
) -> None:
    """Issue 34 item 5: any vend failure against a real tenant printed a 40-line traceback."""
    account = str(uuid.uuid4())
    registered = rsa_key if case == "refused key" else other_rsa_key
    scopes = ["fr:am:*"] if case == "no fr:idm:*" else ["fr:idm:*"]
    fresh_stack.standin.register_account(account, [public_jwk(registered)], scopes)
    key_file = tmp_path / "key.jwk"
    key_file.write_text(json.dumps(private_jwk(other_rsa_key)))
    token_url = "http://127.0.0.1:9/am/oauth2/access_token" if case == "unreachable tenant" else None

    result = _demo(
        {
            "AIC_TENANT_FQDN": "openam-example-ew2.id.forgerock.io",
            "AIC_SERVICE_ACCOUNT_ID": account,
            "AIC_KEY_FILE": str(key_file),
            "AIC_TOKEN_ENDPOINT_URL": token_url or fresh_stack.standin.token_url,
        }
    )

    assert result.returncode == 1, result.stdout + result.stderr
    lines = [
        line for line in result.stderr.splitlines() if not line.startswith("{")
    ]  # the function's JSON logs
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("make run: your tenant: ")
    assert says in lines[0]
    assert "Traceback" not in result.stderr
