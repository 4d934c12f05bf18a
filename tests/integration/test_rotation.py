"""Issue 26: key rotation without downtime, the private key born in AWS.

The whole rotation runs as an operator would: `aic-token rotate` (a fresh process) drives the rotation
function through the local Lambda Invoke endpoint (moto's Secrets Manager with staging labels) and edits the
service account's jwks in the AIC stand-in at its revision. Vends keep succeeding throughout; after
`--finish`, AIC refuses the old key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from local.aws import LOCAL_AWS_ENV
from local.lambda_invoke import LocalLambda
from local.stack import LocalStack
from tests.integration.conftest import budget, direct
from tests.leak_canary import CANARY
from token_vendor.assertion import sign_assertion
from token_vendor.errors import UpstreamRejected
from token_vendor.key_source import parse_secret
from token_vendor.token_endpoint import TokenEndpoint

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def secret_id(fresh_stack: LocalStack) -> str:
    """A secret of its own: a rotation moves staging labels that other users of a shared secret rely on."""
    name = f"token-vendor/rotation-{uuid.uuid4().hex[:8]}"
    secret = fresh_stack.secret_for(fresh_stack.key)
    fresh_stack.client("secretsmanager").create_secret(Name=name, SecretString=secret)
    return name


@pytest.fixture
def rotation_lambda(function_env: Any, fresh_stack: LocalStack, secret_id: str) -> Iterator[LocalLambda]:
    from token_vendor import app
    from token_vendor.rotation import rotation_handler

    function_env(SERVICE_ACCOUNT_SECRET_ID=secret_id)
    service = LocalLambda(
        {"token-vendor": app.lambda_handler, "token-vendor-rotation": rotation_handler}
    ).start()
    yield service
    service.stop()


def _rotate(
    endpoint: str, stack: LocalStack, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_ENV)
    env["AWS_ENDPOINT_URL_LAMBDA"] = endpoint
    env["AIC_ADMIN_TOKEN"] = token if token is not None else stack.standin.admin_token
    return subprocess.run(
        [sys.executable, "-m", "token_client", "rotate", "--function", "token-vendor-rotation",
         "--idm-url", stack.standin.base_url, *args],
        capture_output=True, text=True, env=env, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip


def _svcacct_kids(stack: LocalStack) -> list[str | None]:
    response = urllib3.PoolManager().request(
        "GET",
        f"{stack.standin.base_url}/openidm/managed/svcacct/{stack.account_id}",
        headers={"Authorization": f"Bearer {stack.standin.admin_token}"},
    )
    return [k.get("kid") for k in json.loads(response.json()["jwks"])["keys"]]


def test_a_rotation_under_load_fails_no_vend_and_then_aic_refuses_the_old_key(
    rotation_lambda: LocalLambda, make_vendor: Any, fresh_stack: LocalStack, secret_id: str
) -> None:
    CANARY.add_secret(fresh_stack.standin.admin_token, "AIC admin token")
    old_key = fresh_stack.key
    failures: list[str] = []
    vends = [0]
    stop = threading.Event()

    def load() -> None:  # each vend a new container with an empty table: every one mints with the secret
        table = fresh_stack.client("dynamodb")
        while not stop.is_set():
            for item in table.scan(TableName=fresh_stack.table_name).get("Items", []):
                table.delete_item(TableName=fresh_stack.table_name, Key={"pk": item["pk"]})
            try:
                make_vendor(sleeps=[], SERVICE_ACCOUNT_SECRET_ID=secret_id).vend(direct("fr:idm:*"), budget())
                vends[0] += 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=load)
    worker.start()
    try:
        started = _rotate(rotation_lambda.endpoint, fresh_stack)
        time.sleep(0.5)  # a few more vends with the new key current and the old one still registered
        finished = _rotate(rotation_lambda.endpoint, fresh_stack, "--finish")
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(30)

    assert started.returncode == 0, started.stderr
    assert "promoted:" in started.stdout
    assert finished.returncode == 0, finished.stderr
    assert failures == []
    assert vends[0] >= 5
    current = fresh_stack.client("secretsmanager").get_secret_value(
        SecretId=secret_id, VersionStage="AWSCURRENT"
    )
    new_key = parse_secret(current["SecretString"], current["VersionId"], None)
    assert _svcacct_kids(fresh_stack) == [new_key.kid]
    # AIC now refuses the old key: an assertion signed with it is invalid_client.
    endpoint = TokenEndpoint(fresh_stack.standin.token_url, sleep=lambda s: None)

    def old_assertion() -> Any:
        return sign_assertion(
            old_key, fresh_stack.account_id, fresh_stack.standin.token_url, now=time.time(),
            new_jti=lambda: str(uuid.uuid4()),
        )  # fmt: skip

    with pytest.raises(UpstreamRejected) as refused:
        endpoint.exchange(old_assertion, ("fr:idm:*",), budget())
    assert refused.value.upstream_code in ("invalid_client", "invalid_grant")
    assert "BEGIN" not in started.stdout + finished.stdout  # no private key on the operator's terminal
    assert '"d"' not in started.stdout + finished.stdout


def test_a_rerun_resumes_the_same_pending_key(fresh_stack: LocalStack, secret_id: str) -> None:
    from token_vendor.rotation import Rotation

    rotation = Rotation(secret_id, fresh_stack.client("secretsmanager"))
    first = rotation.create()
    again = rotation.create()

    assert first["created"] is True
    assert again["created"] is False
    assert again["publicJwk"]["kid"] == first["publicJwk"]["kid"]
    assert "d" not in first["publicJwk"]
    assert rotation.finish()["promoted"] is True
    assert rotation.finish()["promoted"] is False  # idempotent


def test_a_refused_admin_token_is_exit_4_and_changes_nothing(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack, secret_id: str
) -> None:
    before = _svcacct_kids(fresh_stack)

    result = _rotate(rotation_lambda.endpoint, fresh_stack, token="not-an-admin-token")

    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1
    assert _svcacct_kids(fresh_stack) == before
    status = fresh_stack.client("secretsmanager").describe_secret(SecretId=secret_id)
    stages = [s for stages in status["VersionIdsToStages"].values() for s in stages]
    assert stages.count("AWSCURRENT") == 1


def test_a_dry_run_changes_nothing(rotation_lambda: LocalLambda, fresh_stack: LocalStack) -> None:
    before = _svcacct_kids(fresh_stack)

    result = _rotate(rotation_lambda.endpoint, fresh_stack, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dry run:")
    assert _svcacct_kids(fresh_stack) == before


def test_a_revision_conflict_is_retried_never_overwritten(fresh_stack: LocalStack) -> None:
    from token_client.rotate import Idm

    idm = Idm(fresh_stack.standin.base_url, fresh_stack.account_id, fresh_stack.standin.admin_token)
    rev, keys, document = idm.read()
    assert idm.write(rev, document, keys) is True  # someone else's change: the revision moves on
    assert idm.write(rev, document, keys) is False  # the stale revision is refused (412), nothing lost


def test_rotate_help_says_what_the_admin_token_needs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "token_client", "rotate", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "AIC_ADMIN_TOKEN" in result.stdout
    assert "--finish" in result.stdout


def test_the_key_version_that_signs_is_in_the_audit_line_and_in_cache_status(
    function_env: Any, invoke: Any, fresh_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    from token_client.cache_tool import CacheTool

    version = fresh_stack.client("secretsmanager").get_secret_value(
        SecretId=fresh_stack.secret_id, VersionStage="AWSCURRENT"
    )["VersionId"]
    capsys.readouterr()

    invoke({"scope": "fr:idm:*"})

    audit = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"audit"' in line][-1]
    assert audit["key_version"] == version
    status = CacheTool(fresh_stack.table_name, fresh_stack.client("dynamodb")).status()
    assert [s.key_version for s in status] == [version]
