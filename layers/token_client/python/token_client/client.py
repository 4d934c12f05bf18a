"""``TokenClient``: what consumers use. One line in a Lambda: ``client.authorization_header("fr:idm:*")``.

Tokens are cached in process per scope set and refreshed ahead of expiry; concurrent callers of one scope
set share one service call; ``UpstreamUnavailable`` is retried with backoff.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from token_client.errors import TokenClientError, TransportError, UpstreamUnavailable
from token_client.transports import HttpTransport, LambdaTransport, Transport

DEFAULT_MIN_VALIDITY = 60
DEFAULT_REFRESH_AHEAD = 120
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float
    scope: str

    def seconds_left(self, now: float) -> float:
        return self.expires_at - now

    def __repr__(self) -> str:
        return f"Token(scope={self.scope!r}, expires_at={self.expires_at})"


def normalise(scope: str | Iterable[str]) -> tuple[str, ...]:
    parts = scope.split() if isinstance(scope, str) else [p for s in scope for p in s.split()]
    return tuple(sorted(set(parts)))


class TokenClient:
    def __init__(
        self,
        transport: Transport,
        *,
        min_validity: int = DEFAULT_MIN_VALIDITY,
        refresh_ahead: int = DEFAULT_REFRESH_AHEAD,
        max_attempts: int = MAX_ATTEMPTS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = transport
        self._min_validity = min_validity
        self._refresh_ahead = max(refresh_ahead, min_validity)
        self._max_attempts = max_attempts
        self._clock = clock
        self._sleep = sleep
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._guard = threading.Lock()

    @classmethod
    def for_function(
        cls,
        function_name: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        session: Any = None,
        **kwargs: Any,
    ) -> TokenClient:
        transport = LambdaTransport(function_name, region=region, endpoint_url=endpoint_url, session=session)
        return cls(transport, **kwargs)

    @classmethod
    def for_url(cls, url: str, **kwargs: Any) -> TokenClient:
        return cls(HttpTransport(url), **kwargs)

    def get_token(self, scope: str | Iterable[str], *, min_validity: int | None = None) -> Token:
        scopes = normalise(scope)
        need = max(self._min_validity, min_validity or 0)
        token = self._tokens.get(scopes)
        if token is not None and token.seconds_left(self._clock()) >= max(need, self._refresh_ahead):
            return token
        with self._lock_for(scopes):  # one service call per scope set, however many threads ask
            token = self._tokens.get(scopes)
            if token is not None and token.seconds_left(self._clock()) >= max(need, self._refresh_ahead):
                return token
            try:
                fresh = self._fetch(scopes, need)
            except TokenClientError:
                if token is not None and token.seconds_left(self._clock()) >= need:
                    return token  # refresh failed, but the cached token still serves
                raise
            self._tokens[scopes] = fresh
            return fresh

    def authorization_header(self, scope: str | Iterable[str], *, min_validity: int | None = None) -> str:
        return f"Bearer {self.get_token(scope, min_validity=min_validity).access_token}"

    def _fetch(self, scopes: tuple[str, ...], need: int) -> Token:
        delay = 0.2
        for attempt in range(1, self._max_attempts + 1):
            try:
                body = self._transport.fetch(scopes, need)
                return Token(str(body["access_token"]), float(body["expires_at"]), str(body["scope"]))
            except (UpstreamUnavailable, TransportError) as exc:
                if attempt == self._max_attempts:
                    raise
                wait = getattr(exc, "retry_after", None) or random.uniform(0, delay)  # noqa: S311 - jitter
                self._sleep(min(wait, 5.0))
                delay *= 2
            except (KeyError, TypeError, ValueError) as exc:
                raise TransportError("the vendor's answer lacks access_token, expires_at or scope") from exc
        raise TransportError("no attempt was made")  # unreachable with max_attempts >= 1

    def _lock_for(self, scopes: tuple[str, ...]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(scopes, threading.Lock())
