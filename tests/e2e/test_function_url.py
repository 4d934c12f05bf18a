"""Issue 13: the function URL front, end to end: SigV4 for service 'lambda', payload 2.0 events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.api_front import ApiFront, Identity
from local.stack import LocalStack, signing_session
from tests.e2e.conftest import POLICY
from token_client import AccessDenied, TokenClient
from token_client.transports import region_of, service_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def url_front(function_env: Any, identities: dict[str, Identity]) -> Iterator[ApiFront]:
    from token_vendor import app

    function_env(CALLER_POLICY=POLICY)
    front = ApiFront(app.http_handler, identities, function_url=True).start()
    yield front
    front.stop()


def test_the_client_signs_for_lambda_and_gets_a_token(
    url_front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    client = TokenClient.for_url(url_front.token_url, session=signing_session(reporting), service="lambda")

    assert client.get_token("fr:idm:*").scope == "fr:idm:*"
    assert url_front.forwarded == 1


def test_a_request_signed_for_execute_api_is_refused_at_a_function_url(
    url_front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    client = TokenClient.for_url(url_front.token_url, session=signing_session(reporting), max_attempts=1)
    with pytest.raises(AccessDenied):
        client.get_token("fr:idm:*")
    assert url_front.forwarded == 0


def test_a_caller_the_policy_does_not_name_is_denied_at_the_function_url(
    url_front: ApiFront, intruder: Identity, fresh_stack: LocalStack
) -> None:
    client = TokenClient.for_url(url_front.token_url, session=signing_session(intruder), service="lambda")
    with pytest.raises(AccessDenied, match="not named in CALLER_POLICY"):
        client.get_token("fr:idm:*")
    assert fresh_stack.standin.token_requests == 0


def test_function_url_hosts_sign_for_lambda_in_their_region() -> None:
    url = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-2.on.aws/token"
    assert (service_of(url), region_of(url)) == ("lambda", "eu-west-2")
    api = "https://abc123.execute-api.eu-west-2.amazonaws.com/v1/token"
    assert (service_of(api), region_of(api)) == ("execute-api", "eu-west-2")
