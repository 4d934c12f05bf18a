"""The exchange at AIC's token endpoint (RFC 7523 section 2.1; CONTRACT section 4).

One ``urllib3.PoolManager`` per execution environment keeps the TLS connection warm. Retries are ours
(urllib3's are off) so that each attempt signs a fresh assertion (AIC refuses a replayed ``jti``), honours
``Retry-After``, and never runs past the Lambda's remaining time.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import urllib3
import urllib3.connection

from token_vendor.adapters.aic.assertion import Assertion
from token_vendor.adapters.http import bounded_http
from token_vendor.kernel import snapshot
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import RetryableAttempt as _Retryable  # a failed attempt worth another
from token_vendor.kernel.errors import UpstreamRejected, UpstreamUnavailable
from token_vendor.kernel.scopes import Scopes

logger = logging.getLogger("token_vendor").getChild(__name__)

CLIENT_ID = "service-account"  # AIC's built-in public client for service accounts
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ATTEMPTS = 3
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
BACKOFF_BASE = 0.2
BACKOFF_CAP = 2.0
MAX_BODY_BYTES = 64 * 1024
MIN_ATTEMPT_SECONDS = 0.05
MAX_EXPIRES_IN = 86_400  # a day: AIC issues minutes; more is a broken or hostile answer (CONTRACT 8)
MAX_TOKEN_CHARS = 16_384
_PRINTABLE_ASCII = re.compile(rf"[\x20-\x7e]{{1,{MAX_TOKEN_CHARS}}}")
_UNSUPPORTED_SCOPE = re.compile(r"Unsupported scope for service account:\s*(.+)", re.IGNORECASE)
_OAUTH_CODE = re.compile(r"[a-z_]{1,64}")


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> None: ...


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str | None
    jti: str  # of the assertion that obtained it, for the audit record
    attempts: int

    def __repr__(self) -> str:
        return f"IssuedToken(expires_in={self.expires_in}, jti={self.jti!r}, attempts={self.attempts})"


MAX_RETRY_AFTER = 60.0
_DELAY_SECONDS = re.compile(r"[0-9]{1,9}")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """RFC 9110 section 10.2.3: ASCII delay-seconds or an HTTP-date, capped; anything else is ignored."""
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER)
    if not value.isascii() or len(value) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        delay = when.timestamp() - now
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return min(max(0.0, delay), MAX_RETRY_AFTER)


def _sanitize(text: object, limit: int = 200) -> str:
    if not isinstance(text, str):
        return ""
    cleaned = "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text)
    return cleaned[:limit]


def map_oauth_error(status: int, body: bytes) -> UpstreamRejected:
    """An OAuth 4xx becomes ``UpstreamRejected`` carrying the upstream code (RFC 6749 section 5.2)."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("error"), str):
        return UpstreamRejected(
            f"token endpoint answered HTTP {status} without an OAuth error body",
            upstream_code=f"http_{status}",
        )
    raw_code = document["error"]
    code = raw_code if _OAUTH_CODE.fullmatch(raw_code) else "invalid_response"
    description = _sanitize(document.get("error_description"))
    unsupported = _UNSUPPORTED_SCOPE.search(description)
    if code == "invalid_scope" and unsupported:
        # AIC: "Unsupported scope for service account: a,b" -> name the scopes the account lacks.
        scopes = tuple(s.strip() for s in unsupported.group(1).split(",") if s.strip())
        return UpstreamRejected(
            f"the service account is not granted: {' '.join(scopes)} (upstream invalid_scope)",
            upstream_code=code,
            rejected_scopes=scopes,
        )
    message = f"token endpoint rejected the request: {code}"
    if description:
        message += f" ({description})"
    return UpstreamRejected(message, upstream_code=code)


def parse_token_response(body: bytes) -> tuple[str, int, str | None]:
    try:
        document: Any = json.loads(body)
    except ValueError as exc:
        raise UpstreamUnavailable("token endpoint answered 200 with a body that is not JSON") from exc
    if not isinstance(document, dict):
        raise UpstreamUnavailable("token endpoint answered 200 with JSON that is not an object")
    token = document.get("access_token")
    if not isinstance(token, str) or not token:
        raise UpstreamUnavailable("token endpoint answered 200 without an access_token")
    if not _PRINTABLE_ASCII.fullmatch(token):  # RFC 6750 section 2.1: a bearer token is printable ASCII
        raise UpstreamUnavailable(
            "token endpoint answered 200 with an access_token that is not printable ASCII"
        )
    expires_in = document.get("expires_in")
    # The token is opaque (an encrypted JWT): expires_in is the only source of its lifetime.
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int)
        or not 0 < expires_in <= MAX_EXPIRES_IN
    ):
        raise UpstreamUnavailable(
            f"token endpoint answered 200 without an integer expires_in from 1 to {MAX_EXPIRES_IN}"
        )
    scope = document.get("scope")
    return token, expires_in, scope if isinstance(scope, str) else None


class TokenEndpoint:
    def __init__(
        self,
        url: str,
        *,
        pool: urllib3.PoolManager | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.url = url
        self._host = urlsplit(url).hostname or url
        self._pool = pool or bounded_http.endpoint_pool()
        self._metrics = metrics
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng or snapshot.fresh_random()  # jitter: re-seeded after a restore
        self._max_attempts = max_attempts
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout

    def exchange(
        self,
        sign: Callable[[], Assertion],
        scopes: Scopes,
        deadline: Deadline,
        *,
        attempts: int | None = None,
        before_retry: Callable[[], Deadline | None] | None = None,
    ) -> IssuedToken:
        """Exchange a fresh assertion for a token, retrying what is worth retrying (CONTRACT section 4).

        The whole exchange (connect, headers, every body read, backoff) ends by ``deadline``.
        ``before_retry`` runs before each retry and returns the deadline for the rest (a lease holder
        renews its lease there); None stops retrying (the lease was lost).
        """
        last: _Retryable | None = None
        limit = attempts or self._max_attempts
        for attempt in range(1, limit + 1):
            if deadline.remaining() < MIN_ATTEMPT_SECONDS:
                break
            assertion = sign()  # a fresh jti for every attempt
            if deadline.remaining() < MIN_ATTEMPT_SECONDS:
                break  # signing (a kms:Sign round trip, keyless) used the time: never send past the deadline
            try:
                token, expires_in, scope = self._attempt(assertion, scopes, deadline)
            except _Retryable as exc:
                last = exc
                logger.warning(
                    "token endpoint attempt failed",
                    extra={"attempt": attempt, "reason": exc.reason, "jti": assertion.jti},
                )
                if attempt == limit:
                    break
                if exc.sent and self._metrics is not None:
                    # AIC may have minted for the request that got no answer: the retry costs a token.
                    self._metrics.add_metric("ExchangeRetriedAfterSend", "Count", 1)
                delay = self._backoff(attempt, exc.retry_after)
                if delay >= deadline.remaining():
                    break
                self._sleep(delay)
                if before_retry is not None:
                    renewed = before_retry()
                    if renewed is None:
                        break
                    deadline = renewed
                continue
            return IssuedToken(token, expires_in, scope, assertion.jti, attempt)
        reason = last.reason if last else "no time left in this invocation"
        retry_after = int(last.retry_after) if last and last.retry_after else 5
        raise UpstreamUnavailable(
            f"token endpoint unavailable: {reason}", retry_after=max(1, min(retry_after, 60))
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        # "Full jitter": spreads the retries of many containers hitting one outage.
        return self._rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))

    def _attempt(
        self, assertion: Assertion, scopes: Scopes, deadline: Deadline
    ) -> tuple[str, int, str | None]:
        body = urlencode(
            {
                "client_id": CLIENT_ID,
                "grant_type": GRANT_TYPE,
                "assertion": assertion.jwt,
                "scope": " ".join(scopes),
            }
        )
        try:
            answer = bounded_http.post(
                self._pool,
                self.url,
                body.encode(),
                {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                deadline,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                max_body=MAX_BODY_BYTES,
            )
        except bounded_http.NoAnswer as exc:
            reason = exc.reason
            if exc.unresolved:
                reason = f"host {self._host} does not resolve (check TENANT_FQDN or TOKEN_ENDPOINT_URL)"
            if exc.certificate:  # nothing was sent and a retry meets the same certificate
                if self._metrics is not None:
                    self._metrics.add_metric("ExchangeCertificateRefused", "Count", 1)
                raise UpstreamUnavailable(
                    f"token endpoint unavailable: {reason} (trust a private CA with AWS_CA_BUNDLE)",
                    retry_after=60,
                ) from exc
            raise _Retryable(reason, sent=exc.sent) from exc
        status, data = answer.status, answer.body
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(answer.headers.get("Retry-After"), self._wall_clock())
            # A gateway's 502/504 came after the request left: AIC may have minted a token nobody gets.
            raise _Retryable(f"HTTP {status}", retry_after, sent=status in (502, 504))
        if len(data) > MAX_BODY_BYTES:
            raise UpstreamUnavailable(f"token endpoint answered HTTP {status} with an oversized body")
        if status == 200:
            return parse_token_response(data)
        raise map_oauth_error(status, data)
