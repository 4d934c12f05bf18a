"""``auth=`` for httpx, sync and async: ``httpx.Client(auth=VendorAuth(client, "fr:idm:*"))``.

``auth_flow`` sets the header from the client's cache and, on a 401 from the resource server, reports the
token to the vendor (``rejected``, by fingerprint) and yields the request once more with the replacement:
httpx's own authentication flow carries the retry. A second 401 is returned as it is (one report, one
retry). With ``httpx.AsyncClient`` the vendor call runs in a worker thread, so the event loop never
blocks on it. The request body is read first (``requires_request_body``) so the retry can send it again.

httpx is not a dependency of the client: ``pip install 'aic-token-client[httpx]'``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable

try:
    import anyio.to_thread
    import httpx
except ImportError:  # pragma: no cover - the hint is tested in a venv without httpx
    raise ImportError("token_client.httpx_auth needs httpx: pip install 'aic-token-client[httpx]'") from None

from token_client.client import Token, TokenClient

__all__ = ["VendorAuth"]


class VendorAuth(httpx.Auth):
    requires_request_body = True

    def __init__(
        self, client: TokenClient, scope: str | Iterable[str], *, min_validity: int | None = None
    ) -> None:
        self._client = client
        self._scope = scope if isinstance(scope, str) else tuple(scope)
        self._min_validity = min_validity

    def _token(self) -> Token:
        return self._client.get_token(self._scope, min_validity=self._min_validity)

    def _replace(self, rejected: Token) -> Token:
        return self._client.retire(self._scope, rejected, min_validity=self._min_validity)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token()
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._replace(token).access_token}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        token = await anyio.to_thread.run_sync(self._token)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request
        if response.status_code == 401:
            fresh = await anyio.to_thread.run_sync(self._replace, token)
            request.headers["Authorization"] = f"Bearer {fresh.access_token}"
            yield request
