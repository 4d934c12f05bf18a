"""Issue 11, end to end: AIC revokes a vended token; callers get 401, report it, and share one fresh token."""

from __future__ import annotations

import os
from typing import Any

import pytest
import urllib3

from local.stack import LocalStack
from tests.e2e.conftest import aic_token
from token_client import TokenClient
from token_client.client import fingerprint

pytestmark = pytest.mark.e2e


def test_revoke_report_one_fresh_token_shared_by_every_caller(
    local_lambda: Any, fresh_stack: LocalStack
) -> None:
    idm = fresh_stack.standin.base_url + "/openidm/managed/alpha_user"
    pool = urllib3.PoolManager()
    statuses: list[int] = []

    def list_users(authorization: str) -> Any:
        response = pool.request("GET", idm, headers={"Authorization": authorization})
        statuses.append(response.status)
        return response

    callers = [TokenClient.for_function("token-vendor", endpoint_url=local_lambda.endpoint) for _ in range(3)]
    revoked = {c.get_token("fr:idm:*").access_token for c in callers}
    assert len(revoked) == 1
    assert fresh_stack.standin.exchanges == 1
    fresh_stack.standin.revoke(revoked.pop())

    first = callers[0].call("fr:idm:*", list_users)
    assert first.status == 200
    assert statuses == [401, 200]
    assert fresh_stack.standin.exchanges == 2  # one fresh token

    for caller in callers[1:]:  # they still hold the revoked token: report it, get the fresh one
        assert caller.call("fr:idm:*", list_users).status == 200
    assert fresh_stack.standin.exchanges == 2
    assert len({c.get_token("fr:idm:*").access_token for c in callers}) == 1


def test_the_cli_reports_a_rejected_token_by_fingerprint(local_lambda: Any, fresh_stack: LocalStack) -> None:
    old = TokenClient.for_function("token-vendor", endpoint_url=local_lambda.endpoint).get_token("fr:idm:*")
    env = {**os.environ, "AWS_ENDPOINT_URL_LAMBDA": local_lambda.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    result = aic_token(
        "--function", "token-vendor", "--scope", "fr:idm:*", "--json",
        "--rejected", fingerprint(old.access_token), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"fingerprint"' in result.stdout
    assert fingerprint(old.access_token) not in result.stdout
    assert fresh_stack.standin.exchanges == 2
