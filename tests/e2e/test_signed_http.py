"""Issue 5: the client library over SigV4-signed HTTP through the local API front."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.api_front import ApiFront, Identity
from local.stack import LocalStack, signing_session
from tests.e2e.conftest import aic_token
from token_client import AccessDenied, HttpTransport, TokenClient

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _client(front: ApiFront, identity: Identity) -> TokenClient:
    return TokenClient(HttpTransport(front.token_url, session=signing_session(identity)))


def test_the_client_gets_a_token_over_signed_http(
    front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    token = _client(front, reporting).get_token("fr:idm:*")

    assert token.scope == "fr:idm:*"
    assert token.seconds_left(__import__("time").time()) > 800
    assert fresh_stack.standin.exchanges == 1
    assert front.forwarded == 1


def test_a_role_the_policy_does_not_name_is_denied(
    front: ApiFront, intruder: Identity, fresh_stack: LocalStack
) -> None:
    with pytest.raises(AccessDenied, match="CALLER_POLICY"):
        _client(front, intruder).get_token("fr:idm:*")
    assert fresh_stack.standin.token_requests == 0


def _signed(
    identity: Identity, url: str, *, secret: str | None = None, when: dt.datetime | None = None
) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url)
    credentials = Credentials(identity.access_key, secret or identity.secret_key, identity.session_token)
    signer = SigV4Auth(credentials, "execute-api", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        if identity.session_token:
            request.headers["X-Amz-Security-Token"] = identity.session_token
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        signer._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    "tamper", ["wrong secret", "stale date", "tampered query", "no signature", "unknown key"]
)
def test_a_bad_signature_gets_403_with_api_gateway_wording_and_no_vend(
    front: ApiFront, reporting: Identity, fresh_stack: LocalStack, tamper: str
) -> None:
    url = front.token_url + "?scope=fr%3Aidm%3A%2A"
    headers = _signed(reporting, url)
    if tamper == "wrong secret":
        headers = _signed(reporting, url, secret="not-the-secret")
    elif tamper == "stale date":
        headers = _signed(reporting, url, when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    elif tamper == "tampered query":
        url = front.token_url + "?scope=fr%3Aam%3A%2A"
    elif tamper == "no signature":
        headers = {}
    else:
        headers = _signed(Identity("AKIAUNKNOWN000000000", "x", None, "arn:aws:iam::1:role/x"), url)

    response = urllib3.PoolManager().request("GET", url, headers=headers)

    assert response.status == 403
    message = response.json()["message"]
    expected = {
        "wrong secret": "The request signature we calculated does not match",
        "stale date": "Signature expired",
        "tampered query": "The request signature we calculated does not match",
        "no signature": "Missing Authentication Token",
        "unknown key": "The security token included in the request is invalid",
    }[tamper]
    assert message.startswith(expected)
    assert front.forwarded == 0
    assert fresh_stack.standin.token_requests == 0


def test_32_threads_sharing_one_client_cause_one_service_call(
    front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    client = _client(front, reporting)
    barrier = threading.Barrier(32)
    tokens: list[str] = []

    def ask() -> None:
        barrier.wait()
        tokens.append(client.get_token("fr:idm:*").access_token)

    threads = [threading.Thread(target=ask) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(tokens) == 32
    assert len(set(tokens)) == 1
    assert front.forwarded == 1


def test_the_cli_header_works_against_idm(
    front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": reporting.access_key,
        "AWS_SECRET_ACCESS_KEY": reporting.secret_key,
        "AWS_SESSION_TOKEN": reporting.session_token or "",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = aic_token("--scope", "fr:idm:*", "--url", front.token_url, "--header", env=env)
    assert result.returncode == 0, result.stderr
    name, value = result.stdout.strip().split(": ", 1)
    assert name == "Authorization"

    response = urllib3.PoolManager().request(
        "GET", fresh_stack.standin.base_url + "/openidm/managed/alpha_user", headers={"Authorization": value}
    )
    assert response.status == 200
    assert response.json()["resultCount"] == 3


def test_the_cli_reports_a_denial_in_one_line_with_its_exit_code(front: ApiFront, intruder: Identity) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": intruder.access_key,
        "AWS_SECRET_ACCESS_KEY": intruder.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_SESSION_TOKEN", None)
    result = aic_token("--scope", "fr:idm:*", "--url", front.token_url, env=env)
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("aic-token: AccessDenied:")


def test_the_cli_names_a_wrong_path_as_a_setup_mistake(front: ApiFront, reporting: Identity) -> None:
    """Issue 22: a path the API does not serve is exit 7 (fix the URL), not 3 or 6."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": reporting.access_key,
        "AWS_SECRET_ACCESS_KEY": reporting.secret_key,
        "AWS_SESSION_TOKEN": reporting.session_token or "",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = aic_token("--scope", "fr:idm:*", "--url", front.base_url + "/tokens", env=env)
    assert result.returncode == 7, result.stderr
    assert result.stderr.count("\n") == 1


def test_the_lambda_transport_maps_function_errors_to_the_same_names(function_env: Any) -> None:
    """The invoke transport against a stubbed Lambda client that answers like the runtime does."""
    import io
    import json

    from token_client import InvalidScope, LambdaTransport, UpstreamUnavailable

    class FakeLambda:
        def __init__(self, payload: dict[str, Any], error: bool) -> None:
            self.payload, self.error, self.calls = payload, error, []

        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(json.loads(kwargs["Payload"]))
            out: dict[str, Any] = {"Payload": io.BytesIO(json.dumps(self.payload).encode())}
            if self.error:
                out["FunctionError"] = "Unhandled"
            return out

    bad = FakeLambda({"errorType": "InvalidScope", "errorMessage": "scope #1 contains U+00E9"}, error=True)
    with pytest.raises(InvalidScope, match="U\\+00E9"):
        TokenClient(LambdaTransport("vendor", client=bad, prove_identity=False)).get_token("x")

    down = FakeLambda(
        {"errorType": "UpstreamUnavailable", "errorMessage": "token endpoint unavailable"}, error=True
    )
    with pytest.raises(UpstreamUnavailable):
        TokenClient(
            LambdaTransport("vendor", client=down, prove_identity=False), sleep=lambda s: None
        ).get_token("fr:idm:*")
    assert len(down.calls) == 3  # retried with backoff, then given up

    good = FakeLambda({"access_token": "t" * 30, "expires_at": 4102444800, "scope": "fr:idm:*"}, error=False)
    client = TokenClient(LambdaTransport("vendor", client=good, prove_identity=False))
    assert client.authorization_header("fr:idm:*") == "Bearer " + "t" * 30
    assert good.calls == [{"scopes": ["fr:idm:*"], "minValiditySeconds": 60}]
