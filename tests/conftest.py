"""Shared fixtures: generated keys, the local stack, and the function pointed at it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import settings

from local.aws import create_table
from local.lambda_context import LocalContext
from local.stack import LocalStack, new_rsa_key, start_stack
from tests.leak_canary import CANARY

# CI explores the same 10,500 fuzz examples every run (a red build always reproduces); a developer's run
# draws new ones, so the search keeps widening.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    key = new_rsa_key()
    CANARY.register_key(key)
    return key


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    key = new_rsa_key()
    CANARY.register_key(key)
    return key


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    local = start_stack()
    CANARY.register_key(local.key)
    CANARY.standins.append(local.standin)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def table_name(stack: LocalStack) -> str:
    """A fresh table per test, made from template.yaml's definition."""
    name = f"tokens-{uuid.uuid4().hex[:12]}"
    create_table(stack.client("dynamodb"), name)
    return name


@pytest.fixture
def fresh_stack(stack: LocalStack, table_name: str) -> Iterator[LocalStack]:
    """The shared stack with counters and faults reset and a secret holding the stack's own key."""
    stack.standin.reset_counters()
    stack.standin.set_keys(stack.account_id, [_public(stack.key)])
    stack.put_secret(stack.secret_for(stack.key))
    stack.table_name = table_name
    yield stack
    stack.standin.reset_counters()


def _public(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    from local.stack import public_jwk

    return public_jwk(key)


SETTINGS_VARIABLES = (
    "TENANT_FQDN",
    "SERVICE_ACCOUNT_SECRET_ID",
    "TOKEN_CACHE_TABLE",
    "TOKEN_CACHE_KEY_ID",
    "ALLOWED_SCOPES",
    "CALLER_POLICY",
    "TOKEN_ENDPOINT_URL",
    "ASSERTION_AUDIENCE",
    "MIN_VALIDITY_SECONDS",
    "REFRESH_AHEAD_SECONDS",
    "SERVICE_ACCOUNT_ID",
    "DIRECT_INVOKE_SCOPES",
    "MIN_REFRESH_INTERVAL_SECONDS",
)


@pytest.fixture
def function_env(fresh_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, str]]:
    """Point the Lambda handler at the local stack; returns a function to apply overrides."""
    from token_vendor import app

    def apply(**overrides: str) -> dict[str, str]:
        env = fresh_stack.function_env(**overrides)
        for name in list(env) + list(SETTINGS_VARIABLES):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        app.reset_runtime()
        return env

    apply()
    yield apply
    app.reset_runtime()


@pytest.fixture
def invoke(function_env: Callable[..., dict[str, str]]) -> Callable[[Any], dict[str, Any]]:
    from token_vendor import app

    def call(event: Any) -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(event, LocalContext())
        return result

    return call
