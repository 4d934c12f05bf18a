"""``TokenClient``: what consumers use. One line in a Lambda: ``client.authorization_header("fr:idm:*")``.

Tokens are cached in process per scope set and refreshed ahead of expiry; concurrent callers of one scope
set share one service call; ``UpstreamUnavailable`` is retried with backoff. When AIC answers 401 to a
token it should still honour, ``retire`` (or ``call``, which retries once) reports it: the vendor retires it
for the whole fleet and hands back a fresh one.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from token_client.errors import TokenClientError, TransportError, UpstreamUnavailable
from token_client.transports import HttpTransport, LambdaTransport, Transport

T = TypeVar("T")
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


def fingerprint(access_token: str) -> str:
    """The vendor's audit fingerprint: the first 12 hex characters of SHA-256 of the token."""
    return hashlib.sha256(access_token.encode()).hexdigest()[:12]


def _status_of(response: Any) -> Any:
    return getattr(response, "status", getattr(response, "status_code", None))


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
        prove_identity: bool = True,
        **kwargs: Any,
    ) -> TokenClient:
        """Invoke the vendor function. By default each invoke carries a proof of the caller's identity (a
        signed, unsent sts:GetCallerIdentity), so the vendor applies CALLER_POLICY to this principal;
        ``prove_identity=False`` sends none (the vendor then applies DIRECT_INVOKE_SCOPES)."""
        transport = LambdaTransport(
            function_name,
            region=region,
            endpoint_url=endpoint_url,
            session=session,
            prove_identity=prove_identity,
        )
        return cls(transport, **kwargs)

    @classmethod
    def for_url(
        cls,
        url: str,
        *,
        region: str | None = None,
        session: Any = None,
        service: str | None = None,
        **kwargs: Any,
    ) -> TokenClient:
        """The REST API URL (…/v1/token) or a function URL (…lambda-url….on.aws/token); SigV4 signs for
        ``execute-api`` or ``lambda`` by the host, or as ``service`` says."""
        return cls(HttpTransport(url, region=region, session=session, service=service), **kwargs)

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

    def retire(
        self, scope: str | Iterable[str], rejected: str | Token, *, min_validity: int | None = None
    ) -> Token:
        """AIC refused ``rejected`` (a token or its access token string): report it, get a fresh one.

        Threads that report the same token share one call to the vendor; a report of a token this client
        has already replaced is answered from the cache."""
        access_token = rejected.access_token if isinstance(rejected, Token) else rejected
        return self.report_rejected(scope, fingerprint(access_token), min_validity=min_validity)

    def report_rejected(
        self, scope: str | Iterable[str], rejected_fingerprint: str, *, min_validity: int | None = None
    ) -> Token:
        scopes = normalise(scope)
        need = max(self._min_validity, min_validity or 0)
        with self._lock_for(scopes):
            cached = self._tokens.get(scopes)
            if (
                cached is not None
                and fingerprint(cached.access_token) != rejected_fingerprint
                and cached.seconds_left(self._clock()) >= need
            ):
                return cached  # another thread already replaced the rejected token
            self._tokens.pop(scopes, None)
            fresh = self._fetch(scopes, need, rejected_fingerprint)
            self._tokens[scopes] = fresh
            return fresh

    def call(self, scope: str | Iterable[str], request: Callable[[str], T]) -> T:
        """Run ``request(authorization_header)``; on a 401 report the token and retry once with a fresh one
        (``request`` returns anything with ``status`` or ``status_code``: urllib3, requests, httpx)."""
        token = self.get_token(scope)
        response = request(f"Bearer {token.access_token}")
        if _status_of(response) != 401:
            return response
        fresh = self.retire(scope, token)
        return request(f"Bearer {fresh.access_token}")

    def _fetch(self, scopes: tuple[str, ...], need: int, rejected: str | None = None) -> Token:
        delay = 0.2
        for attempt in range(1, self._max_attempts + 1):
            try:
                body = self._transport.fetch(scopes, need, rejected)
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
