"""``auth=`` for requests: ``requests.get(url, auth=VendorAuth(client, "fr:idm:*"))``.

Before each request the header is set from the client's cache (a vendor call only when the token is near
its end). On a 401 from the resource server the token is reported to the vendor (``rejected``, by
fingerprint: it is retired for the whole fleet) and the request is sent once more with the replacement,
through requests' own response hook, as its digest authentication does. A second 401 is returned to the
caller as it is: one report and one retry per request, never a loop.

requests is not a dependency of the client: ``pip install 'aic-token-client[requests]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    import requests
    from requests.auth import AuthBase
except ImportError:  # pragma: no cover - the hint is tested in a venv without requests
    raise ImportError(
        "token_client.requests_auth needs requests: pip install 'aic-token-client[requests]'"
    ) from None

from token_client.client import TokenClient

__all__ = ["VendorAuth"]

_POSITION = "_aic_token_body_position"


class VendorAuth(AuthBase):
    def __init__(
        self, client: TokenClient, scope: str | Iterable[str], *, min_validity: int | None = None
    ) -> None:
        self._client = client
        self._scope = scope if isinstance(scope, str) else tuple(scope)
        self._min_validity = min_validity

    def __call__(self, request: Any) -> Any:
        header = self._client.authorization_header(self._scope, min_validity=self._min_validity)
        request.headers["Authorization"] = header
        try:  # a file-like body: remember where it starts, so the retry can send it again
            setattr(request, _POSITION, request.body.tell())
        except AttributeError:
            setattr(request, _POSITION, None)
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: Any, **kwargs: Any) -> Any:
        if response.status_code != 401:
            return response
        sent = response.request
        header = str(sent.headers.get("Authorization", ""))
        if not header.startswith("Bearer "):  # requests stripped it (a redirect to another host): that
            return response  # host never had our token, and must not get the replacement
        rejected = header.removeprefix("Bearer ")
        fresh = self._client.retire(self._scope, rejected, min_validity=self._min_validity)
        position = getattr(sent, _POSITION, None)
        if position is not None:
            sent.body.seek(position)
        response.content  # noqa: B018 - read the 401's body so its connection goes back to the pool
        response.close()
        retry = sent.copy()
        retry.hooks["response"] = [h for h in retry.hooks["response"] if h != self._on_response]
        retry.headers["Authorization"] = f"Bearer {fresh.access_token}"
        again: requests.Response = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again
