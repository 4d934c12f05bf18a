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

from local.aic_standin import Fault
from local.aws import LOCAL_AWS_ENV
from local.lambda_invoke import LocalLambda
from local.stack import LocalStack, public_jwk
from tests.integration.conftest import budget, direct
from tests.leak_canary import CANARY
from token_vendor.adapters.aic.assertion import sign_assertion
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws.key_source import parse_secret
from token_vendor.kernel.errors import UpstreamRejected

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
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(fresh_stack.key), first["publicJwk"]])
    rotation.test(_endpoint(fresh_stack), fresh_stack.standin.token_url, ("fr:idm:*",))

    assert first["created"] is True
    assert again["created"] is False
    assert again["publicJwk"]["kid"] == first["publicJwk"]["kid"]
    assert "d" not in first["publicJwk"]
    assert rotation.finish()["promoted"] is True
    assert rotation.finish()["promoted"] is False  # idempotent


def _endpoint(stack: LocalStack) -> TokenEndpoint:
    return TokenEndpoint(stack.standin.token_url, sleep=lambda s: None)


def _stages(stack: LocalStack, secret_id: str) -> dict[str, list[str]]:
    described = stack.client("secretsmanager").describe_secret(SecretId=secret_id)
    return {v: sorted(labels) for v, labels in described["VersionIdsToStages"].items()}


def test_finish_refuses_a_pending_key_that_never_passed_a_test(
    fresh_stack: LocalStack, secret_id: str
) -> None:
    """Issue 30: the rotation function's finish promoted a version whose test never passed."""
    from token_vendor.kernel.errors import InvalidRequest
    from token_vendor.rotation import Rotation

    rotation = Rotation(secret_id, fresh_stack.client("secretsmanager"))
    rotation.create()  # AIC was never told of the new key: a promote now would break every mint
    before = _stages(fresh_stack, secret_id)

    with pytest.raises(InvalidRequest, match="has not passed a test"):
        rotation.finish()

    assert _stages(fresh_stack, secret_id) == before
    assert rotation.status()["AWSPENDING"]["tested"] is False


def test_a_failed_test_takes_back_an_earlier_pass(fresh_stack: LocalStack, secret_id: str) -> None:
    from token_vendor.kernel.errors import InvalidRequest
    from token_vendor.rotation import Rotation

    rotation = Rotation(secret_id, fresh_stack.client("secretsmanager"))
    pending = rotation.create()["publicJwk"]
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(fresh_stack.key), pending])
    rotation.test(_endpoint(fresh_stack), fresh_stack.standin.token_url, ("fr:idm:*",))
    assert rotation.status()["AWSPENDING"]["tested"] is True
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(fresh_stack.key)])  # AIC dropped it

    with pytest.raises(UpstreamRejected):
        rotation.test(_endpoint(fresh_stack), fresh_stack.standin.token_url, ("fr:idm:*",))

    assert rotation.status()["AWSPENDING"]["tested"] is False
    with pytest.raises(InvalidRequest):
        rotation.finish()


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


def test_a_revision_conflict_is_retried_never_overwritten(
    fresh_stack: LocalStack, other_rsa_key: Any
) -> None:
    from token_client.rotate import Idm

    idm = Idm(fresh_stack.standin.base_url, fresh_stack.account_id, fresh_stack.standin.admin_token)
    rev, keys = idm.read()
    assert idm.write(rev, keys) is True  # someone else's change: the revision moves on
    after = _svcacct(fresh_stack)
    assert idm.write(rev, [*keys, public_jwk(other_rsa_key)]) is False  # stale: 412, nothing lost
    assert _svcacct(fresh_stack) == after


def _svcacct(stack: LocalStack) -> dict[str, Any]:
    response = urllib3.PoolManager().request(
        "GET",
        f"{stack.standin.base_url}/openidm/managed/svcacct/{stack.account_id}",
        headers={"Authorization": f"Bearer {stack.standin.admin_token}"},
    )
    document: dict[str, Any] = response.json()
    return document


def _numbers(stack: LocalStack) -> list[tuple[int, int] | None]:
    from token_client.rotate import key_numbers

    return [key_numbers(k) for k in json.loads(_svcacct(stack)["jwks"])["keys"]]


def _numbers_of(key: Any) -> tuple[int, int]:
    public = key.public_key().public_numbers()
    return public.n, public.e


def _refused(result: subprocess.CompletedProcess[str], code: int = 7) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "listed",
    [{}, {"kid": "chosen-by-aic", "use": "sig", "alg": "RS256"}],
    ids=["console-key-without-kid", "key-under-a-kid-of-aics"],
)
def test_finish_on_an_account_never_rotated_keeps_its_key(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack, listed: dict[str, str]
) -> None:
    """Issue 30: keys were matched by kid, and the live key listed without one (a console download) or
    under another matched nothing: --finish wrote {"keys": []}. Keys are now matched by n and e."""
    fresh_stack.standin.set_keys(fresh_stack.account_id, [{**public_jwk(fresh_stack.key), **listed}])
    before = _svcacct(fresh_stack)

    result = _rotate(rotation_lambda.endpoint, fresh_stack, "--finish")

    assert result.returncode == 0, result.stderr
    assert "removed 0 old key(s)" in result.stdout
    assert _svcacct(fresh_stack) == before  # not even a write


def test_finish_after_a_rotation_stopped_before_its_promote_keeps_the_live_key(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack, secret_id: str
) -> None:
    """The test exchange fails, so the secret's AWSCURRENT is still the console key: --finish keeps it
    (and drops the pending one from AIC); it used to write an empty key set."""
    fresh_stack.standin.push_faults(
        Fault("status", 400, b'{"error":"invalid_grant","error_description":"stand-in refusal"}')
    )
    stopped = _rotate(rotation_lambda.endpoint, fresh_stack)
    assert stopped.returncode == 5, stopped.stderr
    assert "promoted:" not in stopped.stdout
    assert len(_numbers(fresh_stack)) == 2  # the console key and the pending one

    result = _rotate(rotation_lambda.endpoint, fresh_stack, "--finish")

    assert result.returncode == 0, result.stderr
    assert _numbers(fresh_stack) == [_numbers_of(fresh_stack.key)]
    assert "still holds a pending key" in result.stdout
    assert "AWSPENDING" in [s for v in _stages(fresh_stack, secret_id).values() for s in v]


def test_finish_is_refused_when_aic_does_not_list_the_live_key(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack, other_rsa_key: Any
) -> None:
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(other_rsa_key)])
    before = _svcacct(fresh_stack)

    result = _rotate(rotation_lambda.endpoint, fresh_stack, "--finish")

    _refused(result)
    assert "RotationRefused" in result.stderr
    assert "does not list the key the fleet signs with" in result.stderr
    assert _svcacct(fresh_stack) == before


def test_a_rotation_is_refused_before_it_creates_a_key_when_aic_lacks_the_live_key(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack, other_rsa_key: Any, secret_id: str
) -> None:
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(other_rsa_key)])
    before, stages = _svcacct(fresh_stack), _stages(fresh_stack, secret_id)

    result = _rotate(rotation_lambda.endpoint, fresh_stack)

    _refused(result)
    assert "does not list the key the fleet signs with" in result.stderr
    assert _svcacct(fresh_stack) == before
    assert _stages(fresh_stack, secret_id) == stages  # no pending version either


def test_the_write_changes_jwks_alone_at_the_read_revision(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack
) -> None:
    """Issue 30: the write replaced the whole object with what a GET returned; now it is IDM's PATCH of
    the one field, with If-Match (a stale revision is 412: test_a_revision_conflict_…)."""
    writes = fresh_stack.standin.svcacct.writes
    seen = len(writes)
    before = {k: v for k, v in _svcacct(fresh_stack).items() if k not in ("_rev", "jwks")}

    started = _rotate(rotation_lambda.endpoint, fresh_stack)
    finished = _rotate(rotation_lambda.endpoint, fresh_stack, "--finish")

    assert started.returncode == 0, started.stderr
    assert finished.returncode == 0, finished.stderr
    assert [method for method, _, _ in writes[seen:]] == ["PATCH", "PATCH"]
    for _, _, body in writes[seen:]:
        assert [(op["operation"], op["field"]) for op in body] == [("replace", "/jwks")]
    assert {k: v for k, v in _svcacct(fresh_stack).items() if k not in ("_rev", "jwks")} == before


def test_rotate_pointed_at_the_vendor_function_says_so(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack
) -> None:
    """Issue 34: it said "unknown member(s) 'action'" (exit 3) with no hint."""
    before = _svcacct(fresh_stack)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_ENV, AWS_ENDPOINT_URL_LAMBDA=rotation_lambda.endpoint)
    env["AIC_ADMIN_TOKEN"] = fresh_stack.standin.admin_token

    result = subprocess.run(
        [sys.executable, "-m", "token_client", "rotate", "--function", "token-vendor",
         "--idm-url", fresh_stack.standin.base_url],
        capture_output=True, text=True, env=env, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip

    _refused(result)
    assert "is not the KeyRotationFunction" in result.stderr
    assert "KeyRotationFunctionArn" in result.stderr
    assert _svcacct(fresh_stack) == before


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
