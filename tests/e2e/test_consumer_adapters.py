"""Issue 36: ``auth=`` for requests and httpx against the local stack and the AIC stand-in. A 401 from the
resource server is reported once (the vendor retires the token) and the request is sent once more with the
replacement; a second 401 goes back to the caller with no second report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests

from local.stack import LocalStack
from token_client import Token, TokenClient
from token_client.client import fingerprint
from token_client.httpx_auth import VendorAuth as HttpxAuth
from token_client.requests_auth import VendorAuth as RequestsAuth

pytestmark = pytest.mark.e2e
SCOPE = "fr:idm:*"


class Reports:
    """Counts the client's reports to the vendor; ``revoke_fresh`` makes AIC refuse the replacement too."""

    def __init__(self, client: TokenClient, stack: LocalStack, *, revoke_fresh: bool = False) -> None:
        self.rejected: list[str] = []
        real = client.report_rejected

        def spy(scope: Any, rejected_fingerprint: str, **kwargs: Any) -> Token:
            self.rejected.append(rejected_fingerprint)
            fresh = real(scope, rejected_fingerprint, **kwargs)
            if revoke_fresh:
                stack.standin.revoke(fresh.access_token)
            return fresh

        client.report_rejected = spy  # type: ignore[method-assign]


def _revoked_client(local_lambda: Any, stack: LocalStack) -> tuple[TokenClient, str]:
    """A client holding a token AIC has since revoked (its next use is a 401)."""
    client = TokenClient.for_function("token-vendor", endpoint_url=local_lambda.endpoint)
    old = client.get_token(SCOPE).access_token
    stack.standin.revoke(old)
    return client, old


def _users(stack: LocalStack) -> str:
    return stack.standin.base_url + "/openidm/managed/alpha_user"


def test_requests_auth_reports_once_and_retries_once(local_lambda: Any, fresh_stack: LocalStack) -> None:
    client, old = _revoked_client(local_lambda, fresh_stack)
    reports = Reports(client, fresh_stack)

    response = requests.get(_users(fresh_stack), auth=RequestsAuth(client, SCOPE), timeout=10)

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert reports.rejected == [fingerprint(old)]
    assert fresh_stack.standin.exchanges == 2  # the first token, and its one replacement
    again = requests.get(_users(fresh_stack), auth=RequestsAuth(client, SCOPE), timeout=10)
    assert again.status_code == 200
    assert again.history == []
    assert len(reports.rejected) == 1


def test_requests_auth_a_second_401_is_returned_without_a_second_report(
    local_lambda: Any, fresh_stack: LocalStack
) -> None:
    client, old = _revoked_client(local_lambda, fresh_stack)
    reports = Reports(client, fresh_stack, revoke_fresh=True)

    with requests.Session() as session:
        response = session.get(_users(fresh_stack), auth=RequestsAuth(client, SCOPE), timeout=10)

    assert response.status_code == 401
    assert [r.status_code for r in response.history] == [401]  # one retry, then the caller's
    assert reports.rejected == [fingerprint(old)]
    assert fresh_stack.standin.exchanges == 2


def _httpx_cases() -> list[Callable[[str, httpx.Auth], httpx.Response]]:
    def sync(url: str, auth: httpx.Auth) -> httpx.Response:
        with httpx.Client(auth=auth, timeout=10) as http:
            return http.get(url)

    def asynchronous(url: str, auth: httpx.Auth) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(auth=auth, timeout=10) as http:
                return await http.get(url)

        return asyncio.run(go())

    return [sync, asynchronous]


@pytest.mark.parametrize("send", _httpx_cases(), ids=["httpx.Client", "httpx.AsyncClient"])
def test_httpx_auth_reports_once_and_retries_once(
    send: Callable[[str, httpx.Auth], httpx.Response], local_lambda: Any, fresh_stack: LocalStack
) -> None:
    client, old = _revoked_client(local_lambda, fresh_stack)
    reports = Reports(client, fresh_stack)

    response = send(_users(fresh_stack), HttpxAuth(client, SCOPE))

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert reports.rejected == [fingerprint(old)]
    assert fresh_stack.standin.exchanges == 2


@pytest.mark.parametrize("send", _httpx_cases(), ids=["httpx.Client", "httpx.AsyncClient"])
def test_httpx_auth_a_second_401_is_returned_without_a_second_report(
    send: Callable[[str, httpx.Auth], httpx.Response], local_lambda: Any, fresh_stack: LocalStack
) -> None:
    client, old = _revoked_client(local_lambda, fresh_stack)
    reports = Reports(client, fresh_stack, revoke_fresh=True)

    response = send(_users(fresh_stack), HttpxAuth(client, SCOPE))

    assert response.status_code == 401
    assert [r.status_code for r in response.history] == [401]  # one retry, then the caller's
    assert reports.rejected == [fingerprint(old)]
    assert fresh_stack.standin.exchanges == 2
