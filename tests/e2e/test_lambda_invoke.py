"""Issue 10: the direct path through Lambda's Invoke API (the local endpoint), as consumers use it."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
import urllib3

from local.stack import LocalStack
from tests.e2e.conftest import aic_token
from tests.e2e.test_invoke_endpoint_auth import _signed_headers
from token_client import InvalidRequest, InvalidScope, SetupError, TokenClient

pytestmark = pytest.mark.e2e


def _client(local_lambda: Any, name: str = "token-vendor") -> TokenClient:
    return TokenClient.for_function(name, endpoint_url=local_lambda.endpoint, region="us-east-1")


def test_for_function_vends_through_the_invoke_endpoint(local_lambda: Any, fresh_stack: LocalStack) -> None:
    token = _client(local_lambda).get_token("fr:idm:*")

    assert token.scope == "fr:idm:*"
    assert token.seconds_left(time.time()) > 800
    assert (local_lambda.invocations, fresh_stack.standin.exchanges) == (1, 1)


def test_a_function_arn_reaches_the_same_function(local_lambda: Any, fresh_stack: LocalStack) -> None:
    token = _client(local_lambda, local_lambda.arn("token-vendor") + ":$LATEST").get_token("fr:idm:*")

    assert token.scope == "fr:idm:*"


def test_a_refused_request_raises_the_vendors_error_name_from_lambdas_envelope(local_lambda: Any) -> None:
    with pytest.raises(InvalidScope, match="U\\+0022"):
        _client(local_lambda).get_token(['bad"scope'])
    assert local_lambda.errors == 1


def test_the_error_envelope_is_lambdas(local_lambda: Any, fresh_stack: LocalStack) -> None:
    url = f"{local_lambda.endpoint}/2015-03-31/functions/token-vendor/invocations"
    body = json.dumps({"scope": "fr:idm:*", "bogus": 1}).encode()
    response = urllib3.PoolManager().request("POST", url, body=body, headers=_signed_headers(url, body))

    assert response.status == 200
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    body = response.json()
    assert body["errorType"] == "InvalidRequest"
    assert "bogus" in body["errorMessage"]
    assert fresh_stack.standin.token_requests == 0


def test_an_unknown_function_is_a_setup_error_not_retry_later(local_lambda: Any) -> None:
    with pytest.raises(SetupError, match="no function no-such-function"):
        TokenClient.for_function(
            "no-such-function", endpoint_url=local_lambda.endpoint, region="us-east-1", max_attempts=1
        ).get_token("fr:idm:*")


def test_the_cli_function_mode_works_locally(local_lambda: Any, fresh_stack: LocalStack) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL_LAMBDA": local_lambda.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    result = aic_token("--function", "token-vendor", "--scope", "fr:idm:*", "--header", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Authorization: Bearer ")
    refused = aic_token("--function", "token-vendor", "--scope", "a,b", env=env)
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.count("\n") == 1
    unknown = aic_token("--function", "no-such-function", "--scope", "fr:idm:*", env=env)
    assert unknown.returncode == 7, unknown.stderr  # issue 22: a mistake, not "retry later"
    assert unknown.stderr.count("\n") == 1


def test_invalid_request_maps_by_name(local_lambda: Any) -> None:
    with pytest.raises(InvalidRequest):
        _client(local_lambda).get_token("fr:idm:*", min_validity=100_000)
