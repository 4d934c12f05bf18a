"""The local API front (SigV4 checks) in front of the handler, and clients that sign as local roles."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from local.api_front import ApiFront, Identity
from local.stack import REPORTING_ROLE, LocalStack, local_identities
from tests.leak_canary import CANARY

POLICY = json.dumps({REPORTING_ROLE: ["fr:idm:*"]})


@pytest.fixture
def identities(stack: LocalStack) -> dict[str, Identity]:
    """The local roles' credentials, known to the local front, the Invoke endpoint and the loopback STS."""
    roles = local_identities()
    stack.sts.identities.update(roles)
    for role in roles.values():  # the leak canary watches the roles' secrets as it watches keys
        CANARY.add_secret(role.secret_key, "local role's secret access key")
        CANARY.add_secret(role.session_token or "", "local role's session token")
    return roles


@pytest.fixture
def front(function_env: Any, identities: dict[str, Identity]) -> Iterator[ApiFront]:
    from token_vendor import app

    function_env(CALLER_POLICY=POLICY)
    api = ApiFront(app.http_handler, identities).start()
    yield api
    api.stop()


@pytest.fixture
def reporting(identities: dict[str, Identity]) -> Identity:
    return identities["ASIALOCALREPORTING01"]


@pytest.fixture
def intruder(identities: dict[str, Identity]) -> Identity:
    return identities["ASIALOCALINTRUDER001"]


@pytest.fixture
def local_lambda(function_env: Any) -> Iterator[Any]:
    """Lambda's Invoke API on loopback, serving the handler as function ``token-vendor``."""
    from local.lambda_invoke import LocalLambda
    from token_vendor import app

    service = LocalLambda({"token-vendor": app.lambda_handler}).start()
    yield service
    service.stop()


def aic_token(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a shell user would: a fresh process of this interpreter (the client is installed)."""
    return subprocess.run(
        [sys.executable, "-m", "token_client", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
