"""Minting (CONTRACT sections 4 and 8): the key, a fresh assertion, the exchange, and what AIC's answers
teach the fleet.

Rules: every attempt signs a new assertion; a refused key (``invalid_client``/``invalid_grant``) is re-read
once and retried once if the secret changed; AIC's rejections are remembered (``invalid_scope`` 60 s per
scope set, a refused key 60 s per secret version) and suppress attempts while a cached token that still
serves is served; a token with less validity than asked is never handed out; callers read only messages
composed here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from token_vendor.adapters.aic.assertion import Assertion, sign_assertion_with
from token_vendor.adapters.aic.token_endpoint import IssuedToken, TokenEndpoint
from token_vendor.adapters.aws.token_table import (
    ANY_VERSION,
    Rejection,
)
from token_vendor.kernel.cached_token import CachedToken, Vended
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import (
    ConfigurationError,
    TokenVendorError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from token_vendor.kernel.signer import Signer, SigningKey
from token_vendor.kernel.vend_request import VendRequest
from token_vendor.vend.context import (
    KEY_RECHECK_SECONDS,
    NEGATIVE_CACHE_SECONDS,
    ROTATION_CODES,
    Pending,
    VendContext,
)
from token_vendor.vend.locks import RememberedRejections

logger = logging.getLogger("token_vendor").getChild(__name__)


class Minter:
    """Key, assertion, exchange; rejection memory; stale serving."""

    def __init__(
        self,
        context: VendContext,
        *,
        key_source: Signer,
        endpoint: TokenEndpoint,
        new_jti: Callable[[], str],
    ) -> None:
        self._ctx = context
        self._keys = key_source
        self._endpoint = endpoint
        self._new_jti = new_jti
        self._rejections = RememberedRejections(context.clocks.wall)

    # -- minting ----------------------------------------------------------------------------------
    def mint(
        self,
        request: VendRequest,
        deadline: Deadline,
        attempts: int | None,
        renew: Callable[[], Deadline | None] | None,
    ) -> tuple[CachedToken, str]:
        started = time.perf_counter()
        try:
            key = signer = self._keys.current()
            issued, issued_at = self._exchange(key, request, deadline, attempts, renew)
        except UpstreamRejected as exc:
            if exc.upstream_code not in ROTATION_CODES:
                self._ctx.count_upstream_error(exc.upstream_code)
                raise
            # The key may have been rotated since we last read it: re-read once, retry once if it changed.
            fresh_key = self._keys.refresh_now()
            if fresh_key.version_id == key.version_id:
                self._ctx.count_upstream_error(exc.upstream_code)
                raise self._explain_key_rejection(exc, fresh_key) from exc
            logger.info("retrying with the rotated key", extra={"secret_version": fresh_key.version_id})
            try:
                issued, issued_at = self._exchange(fresh_key, request, deadline, attempts, renew)
                signer = fresh_key
            except UpstreamRejected as again:
                self._ctx.count_upstream_error(again.upstream_code)
                if again.upstream_code in ROTATION_CODES:
                    raise self._explain_key_rejection(again, fresh_key) from again
                raise
        except UpstreamUnavailable:
            self._ctx.count_upstream_error("unavailable")
            raise
        except ConfigurationError:  # a broken or unreadable secret: no token can be minted until it is fixed
            self._ctx.count("MintFailures")
            raise
        self._ctx.metrics.add_metric("MintLatency", "Milliseconds", (time.perf_counter() - started) * 1000)
        self._ctx.count("Mints")
        token = CachedToken(
            issued.access_token,
            issued_at + issued.expires_in,
            " ".join(request.scopes),
            float(issued.expires_in),
            signer.version_id,  # reported in the audit line and by `aic-token cache status` (issue 26)
        )
        return token, issued.jti

    def _explain_key_rejection(self, exc: UpstreamRejected, key: SigningKey) -> UpstreamRejected:
        """The log names the account and the secret version; the caller reads neither (CONTRACT 7)."""
        logger.error(
            "AIC refused the service account's key: register the public key of this secret version on "
            "the service account, and check that the account is active",
            extra={
                "upstream_code": exc.upstream_code,
                "secret_version": key.version_id,
                "service_account_id": key.account_id,
            },
        )
        return UpstreamRejected(
            key_rejection_message(exc.upstream_code), upstream_code=exc.upstream_code, version=key.version_id
        )

    def _exchange(
        self,
        key: SigningKey,
        request: VendRequest,
        deadline: Deadline,
        attempts: int | None,
        renew: Callable[[], Deadline | None] | None,
    ) -> tuple[IssuedToken, float]:
        # The lifetime counts from before the request left, so we never overstate it.
        issued_at = self._ctx.clocks.wall()

        def sign() -> Assertion:
            return sign_assertion_with(  # in memory or by kms:Sign: the key's own business (signer.py)
                key,
                self._ctx.settings.assertion_audience,
                now=self._ctx.clocks.signing(),
                new_jti=self._new_jti,
            )

        issued = self._endpoint.exchange(
            sign, request.scopes, deadline, attempts=attempts, before_retry=renew
        )
        return issued, issued_at

    def key_version(self) -> str | None:
        """The secret version in use, if a key is loaded (the lease lets a new version past a rejection)."""
        return self._keys.loaded_version()

    # -- failure handling -------------------------------------------------------------------------
    def stale_or_raise(self, pending: Pending, exc: UpstreamRejected | UpstreamUnavailable) -> Vended:
        if pending.cached is not None and pending.cached_serves(self._ctx.clocks.wall()):
            logger.warning("refresh failed; serving the cached token", extra={"error": exc.name})
            self._ctx.count("StaleServed")
            return Vended(pending.cached, "stale")
        self._ctx.count("MintFailures")
        raise exc

    def serve_despite(self, rejection: Rejection, pending: Pending) -> Vended:
        """A remembered rejection suppresses attempts; a cached token that still serves is served."""
        if pending.cached is not None and pending.cached_serves(self._ctx.clocks.wall()):
            self._ctx.count("StaleServed")
            return Vended(pending.cached, "stale")
        self._ctx.count("NegativeCacheHits")
        # Only scopes this request asked for are named: nothing read from the table is echoed.
        scopes = tuple(s for s in rejection.scopes if s in pending.request.scopes)
        raise UpstreamRejected(
            rejection_message(rejection.upstream_code, scopes),
            upstream_code=rejection.upstream_code,
            rejected_scopes=scopes,
        )

    def remember_rejection(self, key: str, exc: UpstreamRejected) -> Rejection | None:
        if exc.upstream_code == "invalid_scope":
            version = ANY_VERSION
        elif exc.upstream_code in ROTATION_CODES and exc.version:
            version = exc.version  # a new secret version clears it at once
        else:
            return None
        # A misconfigured caller or a refused key must not hammer AIC: the answer stands for a minute.
        rejection = Rejection(
            exc.upstream_code,
            exc.rejected_scopes,
            self._ctx.clocks.wall() + NEGATIVE_CACHE_SECONDS,
            version,
        )
        self._rejections.put(key, rejection)
        return rejection

    def remembered(self, key: str) -> Rejection | None:
        """This container's memory of AIC's last rejection for the key, if any."""
        return self._rejections.get(key)

    def holds(self, rejection: Rejection) -> bool:
        if rejection.until <= self._ctx.clocks.wall():
            return False
        if rejection.version == ANY_VERSION:
            return True
        try:  # a refused key's rejection ends when the secret has a new version
            return self._keys.current(max_age=KEY_RECHECK_SECONDS).version_id == rejection.version
        except TokenVendorError:
            return True


def key_rejection_message(code: str) -> str:
    return (
        f"AIC refused the service account's key ({code}); the token vendor's log for this request names "
        "the service account and the secret version to check"
    )


def rejection_message(code: str, scopes: tuple[str, ...]) -> str:
    """What a caller reads for a remembered rejection, composed here (CONTRACT section 7)."""
    if code in ROTATION_CODES:
        return key_rejection_message(code)
    if scopes:
        return f"the service account is not granted: {' '.join(scopes)} (upstream {code}, remembered)"
    return f"AIC refused this scope set ({code}, remembered)"
