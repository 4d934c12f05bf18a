"""Issue 20: the local Lambda Invoke endpoint authenticates as Lambda does, and the aws CLI works with it.

The aws CLI v1 (its own botocore, pinned in requirements-clients.txt) runs the command ``make run`` prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.aws import LOCAL_AWS_ENV
from local.demo import aws_cli_invoke
from local.stack import LocalStack

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
AWS = REPO / ".venv-clients" / "bin" / "aws"
PAYLOAD = json.dumps({"scope": "fr:idm:*"}).encode()


def _invoke_url(local_lambda: Any) -> str:
    return f"{local_lambda.endpoint}/2015-03-31/functions/token-vendor/invocations"


def _signed_headers(
    url: str, body: bytes, secret: str = LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"]
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body)
    credentials = Credentials(LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"], secret, LOCAL_AWS_ENV["AWS_SESSION_TOKEN"])
    SigV4Auth(credentials, "lambda", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_the_aws_cli_command_make_run_prints_vends_a_token(
    local_lambda: Any, fresh_stack: LocalStack, tmp_path: Path
) -> None:
    if not AWS.exists():
        pytest.skip(f"the aws CLI is not installed ({AWS}); `make test` installs it")
    (tmp_path / "request.json").write_bytes(PAYLOAD)
    command = aws_cli_invoke(local_lambda.endpoint, "request.json", "out.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_ENV)

    result = subprocess.run(
        [str(AWS), *command[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["StatusCode"] == 200
    answer = json.loads((tmp_path / "out.json").read_text())
    assert answer["scope"] == "fr:idm:*"
    assert (local_lambda.invocations, fresh_stack.standin.exchanges) == (1, 1)


def test_an_unsigned_invoke_is_refused_in_lambdas_shape(local_lambda: Any, fresh_stack: LocalStack) -> None:
    response = urllib3.PoolManager().request("POST", _invoke_url(local_lambda), body=PAYLOAD)

    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert response.json() == {"message": "Missing Authentication Token"}
    assert (local_lambda.invocations, fresh_stack.standin.token_requests) == (0, 0)


def test_a_payload_changed_after_signing_is_refused(local_lambda: Any, fresh_stack: LocalStack) -> None:
    headers = _signed_headers(_invoke_url(local_lambda), PAYLOAD)
    forged = json.dumps({"scope": "fr:am:*"}).encode()

    response = urllib3.PoolManager().request("POST", _invoke_url(local_lambda), body=forged, headers=headers)

    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert local_lambda.invocations == 0


def test_a_wrong_secret_key_is_refused(local_lambda: Any, fresh_stack: LocalStack) -> None:
    headers = _signed_headers(_invoke_url(local_lambda), PAYLOAD, secret="not-the-local-secret")

    response = urllib3.PoolManager().request("POST", _invoke_url(local_lambda), body=PAYLOAD, headers=headers)

    assert response.status == 403
    assert response.json()["message"].startswith("The request signature we calculated does not match")
    assert local_lambda.invocations == 0


def test_a_signed_invoke_is_served(local_lambda: Any, fresh_stack: LocalStack) -> None:
    headers = _signed_headers(_invoke_url(local_lambda), PAYLOAD)

    response = urllib3.PoolManager().request("POST", _invoke_url(local_lambda), body=PAYLOAD, headers=headers)

    assert response.status == 200
    assert response.json()["scope"] == "fr:idm:*"
