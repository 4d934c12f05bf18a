"""Issue 35: `aic-token rotate` on a keyless stack, under load, as an operator runs it.

The CLI (a fresh process) creates the next KMS key in moto's KMS, has the rotation function (local Lambda
Invoke endpoint) read its public JWK and make the one test exchange, edits the account's jwks in the AIC
stand-in, moves the alias, and with `--finish` removes the old key from AIC and schedules the old KMS key's
deletion. Vends keep succeeding throughout."""

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

from local.aic_standin import Fault
from local.aws import LOCAL_AWS_ENV
from local.keyless import enrol_keyless, keyless_env, public_keys
from local.lambda_invoke import LocalLambda
from local.stack import LocalStack
from tests.integration.conftest import budget, direct
from tests.leak_canary import CANARY
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws.kms_signer import KmsSigner
from token_vendor.kernel.settings import load_settings
from token_vendor.vend.memory_cache import MemoryCache
from token_vendor.vend.vending import Clocks, TokenVendor
from token_vendor.wiring import compose_vendor

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def alias(fresh_stack: LocalStack) -> str:
    """An alias of its own, enrolled: a rotation moves it."""
    name = f"alias/token-vendor-signing-{uuid.uuid4().hex[:8]}"
    enrol_keyless(fresh_stack, name)
    return name


@pytest.fixture
def rotation_lambda(function_env: Any, fresh_stack: LocalStack, alias: str) -> Iterator[LocalLambda]:
    from token_vendor import app
    from token_vendor.rotation import rotation_handler

    function_env(**keyless_env(fresh_stack, alias))
    service = LocalLambda(
        {"token-vendor": app.lambda_handler, "token-vendor-rotation": rotation_handler}
    ).start()
    yield service
    service.stop()


def _rotate(service: LocalLambda, stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_ENV)
    env["AWS_ENDPOINT_URL_LAMBDA"] = service.endpoint
    env["AWS_ENDPOINT_URL_KMS"] = stack.aws.endpoint
    env["AIC_ADMIN_TOKEN"] = stack.standin.admin_token
    return subprocess.run(
        [sys.executable, "-m", "token_client", "rotate", "--function", "token-vendor-rotation",
         "--idm-url", stack.standin.base_url, *args],
        capture_output=True, text=True, env=env, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip


def _new_container(stack: LocalStack, alias: str) -> TokenVendor:
    """A cold container in the keyless mode, with its own empty cache: its first vend mints."""
    settings = load_settings(keyless_env(stack, alias, TOKEN_CACHE_KEY_ID=""))
    signer = KmsSigner(alias, stack.client("kms"), account_id=stack.account_id, clock=time.monotonic)
    return compose_vendor(
        settings,
        key_source=signer,
        endpoint=TokenEndpoint(settings.token_endpoint_url, sleep=lambda _s: None),
        dynamodb=stack.client("dynamodb"),
        memory=MemoryCache(),
        clocks=Clocks(sleep=lambda _s: None),
    )


def _target(stack: LocalStack, alias: str) -> str:
    return str(stack.client("kms").describe_key(KeyId=alias)["KeyMetadata"]["Arn"])


def test_a_keyless_rotation_under_load_fails_no_vend_and_retires_the_old_kms_key(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack, alias: str
) -> None:
    CANARY.add_secret(fresh_stack.standin.admin_token, "AIC admin token")
    kms = fresh_stack.client("kms")
    old_arn = _target(fresh_stack, alias)
    failures: list[str] = []
    vends = [0]
    stop = threading.Event()

    def load() -> None:
        table = fresh_stack.client("dynamodb")
        while not stop.is_set():
            for item in table.scan(TableName=fresh_stack.table_name).get("Items", []):
                table.delete_item(TableName=fresh_stack.table_name, Key={"pk": item["pk"]})
            try:
                _new_container(fresh_stack, alias).vend(direct("fr:idm:*"), budget())
                vends[0] += 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=load)
    worker.start()
    try:
        started = _rotate(rotation_lambda, fresh_stack)
        time.sleep(0.5)  # more vends with the new key in service and the old one still registered
        finished = _rotate(rotation_lambda, fresh_stack, "--finish")
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(30)

    assert started.returncode == 0, started.stderr
    assert "switched:" in started.stdout
    assert finished.returncode == 0, finished.stderr
    assert "scheduled:" in finished.stdout
    assert failures == []
    assert vends[0] >= 5
    new_arn = _target(fresh_stack, alias)
    assert new_arn != old_arn
    new = KmsSigner(new_arn, kms, account_id="x", clock=time.monotonic).current()
    assert [k.get("kid") for k in public_keys(fresh_stack)] == [new.kid]
    assert kms.describe_key(KeyId=old_arn.rsplit("/", 1)[1])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    # Sealed: the rotation function's test statement is gone from the key in service.
    policy = json.loads(kms.get_key_policy(KeyId=new_arn.rsplit("/", 1)[1], PolicyName="default")["Policy"])
    assert "RotationTestOnly" not in [s.get("Sid") for s in policy.get("Statement", [])]


def test_a_keyless_dry_run_changes_nothing(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack, alias: str
) -> None:
    kms = fresh_stack.client("kms")
    keys_before = len(kms.list_keys()["Keys"])
    listed = public_keys(fresh_stack)

    result = _rotate(rotation_lambda, fresh_stack, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "dry run: would create a new KMS key" in result.stdout
    assert len(kms.list_keys()["Keys"]) == keys_before
    assert public_keys(fresh_stack) == listed


def test_a_new_kms_key_aic_refuses_never_serves_and_is_scheduled_for_deletion(
    rotation_lambda: LocalLambda, fresh_stack: LocalStack, alias: str
) -> None:
    old_arn = _target(fresh_stack, alias)
    keys_before = {k["KeyId"] for k in fresh_stack.client("kms").list_keys()["Keys"]}
    refused = b'{"error":"invalid_client","error_description":"Client authentication failed"}'
    fresh_stack.standin.push_faults(Fault("status", status=400, body=refused))  # the test exchange

    result = _rotate(rotation_lambda, fresh_stack)

    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "scheduled for deletion" in result.stdout
    assert _target(fresh_stack, alias) == old_arn  # the alias never moved
    kms = fresh_stack.client("kms")
    (created,) = {k["KeyId"] for k in kms.list_keys()["Keys"]} - keys_before
    assert kms.describe_key(KeyId=created)["KeyMetadata"]["KeyState"] == "PendingDeletion"
