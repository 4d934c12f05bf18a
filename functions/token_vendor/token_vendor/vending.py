"""Orchestration of one vend: policy, memory, table, lease, mint (DESIGN "The vend path").

Everything that can refuse a request (scopes, ALLOWED_SCOPES, caller policy) runs before any I/O.
Then the cheapest tier that has a token with enough validity answers; only the holder of the lease
mints, so there is one exchange per key per refresh cycle however many containers race.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from token_vendor.assertion import Assertion, sign_assertion
from token_vendor.cached_token import CachedToken, cache_key
from token_vendor.caller_policy import CallerPolicy
from token_vendor.deadline import Deadline
from token_vendor.errors import AccessDenied, UpstreamRejected, UpstreamUnavailable
from token_vendor.key_source import KeySource, ServiceAccountKey
from token_vendor.memory_cache import MemoryCache
from token_vendor.scopes import check_allowed
from token_vendor.settings import Settings
from token_vendor.token_endpoint import IssuedToken, TokenEndpoint
from token_vendor.token_table import CacheUnavailable, Rejection, TableEntry, TokenTable
from token_vendor.vend_request import DIRECT_CALLER, VendRequest

logger = logging.getLogger("token_vendor").getChild(__name__)

LEASE_SECONDS = 10.0
NEGATIVE_CACHE_SECONDS = 60.0
MAX_REMEMBERED_REJECTIONS = 256
POLL_FIRST = 0.05
POLL_MAX = 0.5
# While another container may be minting, a failed table call is retried this many times before this
# container gives up on the shared cache and mints on its own (a second exchange, but never an error).
MAX_TABLE_FAILURES = 3
_ROTATION_CODES = frozenset({"invalid_client", "invalid_grant"})


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> None: ...


class _NoMetrics:
    def add_metric(self, name: str, unit: str, value: float) -> None:
        return None


@dataclass(frozen=True)
class Vended:
    token: CachedToken
    tier: str  # memory | table | minted | stale
    jti: str | None = None


@dataclass
class Clocks:
    """``wall`` times the caches (tests move it); ``signing`` stamps assertions and stays real, because
    AIC checks ``iat``/``exp`` against its own clock."""

    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    signing: Callable[[], float] = time.time


class TokenVendor:
    def __init__(
        self,
        settings: Settings,
        *,
        key_source: KeySource,
        endpoint: TokenEndpoint,
        table: TokenTable,
        memory: MemoryCache | None = None,
        metrics: MetricsSink | None = None,
        clocks: Clocks | None = None,
        lease_seconds: float = LEASE_SECONDS,
        new_jti: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.settings = settings
        self._keys = key_source
        self._endpoint = endpoint
        self._table = table
        self._memory = memory if memory is not None else MemoryCache()
        self._metrics = metrics or _NoMetrics()
        self._clocks = clocks or Clocks()
        self._lease_seconds = lease_seconds
        self._new_jti = new_jti
        self._policy = CallerPolicy(settings.caller_policy)
        # The cache identifies the account without reading the secret, so a table hit needs no key.
        self._account_ref = settings.service_account_id or settings.secret_id
        self._rejections: dict[str, Rejection] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- policy (pure, before any I/O) ------------------------------------------------------------
    def authorize(self, request: VendRequest) -> None:
        check_allowed(request.scopes, self.settings.allowed_scopes)
        if request.caller != DIRECT_CALLER and not self._policy.allows(request.caller, request.scopes):
            self._count("AccessDenied")
            raise AccessDenied(
                f"caller is not allowed scope set '{' '.join(request.scopes)}' by CALLER_POLICY"
            )

    # -- the vend path ----------------------------------------------------------------------------
    def vend(self, request: VendRequest, deadline: Deadline) -> Vended:
        self.authorize(request)
        key = cache_key(self.settings.tenant_fqdn, self._account_ref, request.scopes)
        need = float(max(self.settings.min_validity_seconds, request.min_validity or 0))
        fresh = max(need, float(self.settings.refresh_ahead_seconds))

        hit = self._memory.get(key)
        if hit is not None and hit.seconds_left(self._clocks.wall()) >= fresh:
            self._count("MemoryHits")
            return Vended(hit, "memory")
        with self._lock_for(key):  # one slow path per key per container; the others wait here
            hit = self._memory.get(key)
            if hit is not None and hit.seconds_left(self._clocks.wall()) >= fresh:
                self._count("MemoryHits")
                return Vended(hit, "memory")
            return self._slow_path(key, request, need, fresh, hit, deadline)

    def _slow_path(
        self,
        key: str,
        request: VendRequest,
        need: float,
        fresh: float,
        cached: CachedToken | None,
        deadline: Deadline,
    ) -> Vended:
        self._raise_if_rejected(self._rejections.get(key))
        entry = self._read_table(key)
        if entry is None:  # shared cache down: degrade to minting without it
            return self._mint_unshared(key, request, need, cached, deadline)
        hit_in_table = self._table_hit(key, entry, fresh)
        if hit_in_table is not None:
            return hit_in_table
        if entry.token is None:
            self._raise_if_rejected(entry.rejection)
        best = _fresher(cached, entry.token)  # the better of the memory and table copies, if any
        best_tier = "table" if best is not None and best is entry.token else "memory"
        return self._lease_or_wait(key, request, need, fresh, best, best_tier, entry.unreadable, deadline)

    def _lease_or_wait(
        self,
        key: str,
        request: VendRequest,
        need: float,
        fresh: float,
        cached: CachedToken | None,
        cached_tier: str,
        unreadable: bool,
        deadline: Deadline,
    ) -> Vended:
        """Take the lease and mint, or serve what another holder stores (see token_table's timeline)."""
        delay = POLL_FIRST
        failures = 0  # consecutive table failures while others may be minting
        while True:
            holder = secrets.token_hex(16)  # the fencing value for this lease
            lease = min(self._lease_seconds, max(deadline.remaining(), 0.1))
            try:
                current = self._table.try_lease(key, holder, lease, None if unreadable else fresh)
            except CacheUnavailable as exc:
                self._count("CacheUnavailable")
                failures += 1
                if failures >= MAX_TABLE_FAILURES or delay >= deadline.remaining():
                    logger.warning("token table unavailable; minting without it", extra={"reason": str(exc)})
                    return self._mint_unshared(key, request, need, cached, deadline)
                self._clocks.sleep(delay)  # a blip: one more look before minting a second token
                continue
            failures = 0
            if current is None:
                return self._mint_as_holder(key, request, need, cached, holder, deadline)
            # The previous holder may have stored its token between our read and our lease attempt.
            stored = self._table_hit(key, current, need)
            if stored is not None:
                return stored
            # Someone else is minting. A token that is still good enough is served at once.
            if cached is not None and cached.seconds_left(self._clocks.wall()) >= need:
                self._count("RefreshInProgressServed")
                return Vended(cached, cached_tier)
            if current.token is None:
                self._raise_if_rejected(current.rejection)
            unreadable = current.unreadable
            self._count("LeaseWaits")
            if delay >= deadline.remaining():
                raise UpstreamUnavailable(
                    "another request is minting this token and it did not finish in time"
                )
            self._clocks.sleep(delay)
            delay = min(delay * 1.6, POLL_MAX)
            entry = self._read_table(key)
            if entry is None:
                failures += 1
                if failures >= MAX_TABLE_FAILURES:
                    return self._mint_unshared(key, request, need, cached, deadline)
                continue
            failures = 0
            stored = self._table_hit(key, entry, need)
            if stored is not None:
                return stored
            if entry.token is None:
                self._raise_if_rejected(entry.rejection)
            unreadable = entry.unreadable

    def _table_hit(self, key: str, entry: TableEntry, at_least: float) -> Vended | None:
        if entry.token is None or entry.token.seconds_left(self._clocks.wall()) < at_least:
            return None
        self._memory.put(key, entry.token)
        self._count("TableHits")
        return Vended(entry.token, "table")

    def _mint_as_holder(
        self,
        key: str,
        request: VendRequest,
        need: float,
        cached: CachedToken | None,
        holder: str,
        deadline: Deadline,
    ) -> Vended:
        try:
            token, jti = self._mint(request, deadline)
        except UpstreamRejected as exc:
            rejection = self._remember_rejection(key, exc)
            self._table.release(key, holder, rejection)
            return self._stale_or_raise(cached, need, exc)
        except UpstreamUnavailable as exc:
            self._table.release(key, holder)
            return self._stale_or_raise(cached, need, exc)
        except BaseException:
            self._table.release(key, holder)
            raise
        self._memory.put(key, token)
        try:
            self._table.store(key, token, holder)
        except CacheUnavailable as exc:
            logger.warning("could not store the token in the table", extra={"reason": str(exc)})
            self._count("CacheUnavailable")
            self._table.release(key, holder)
        return Vended(token, "minted", jti)

    def _mint_unshared(
        self, key: str, request: VendRequest, need: float, cached: CachedToken | None, deadline: Deadline
    ) -> Vended:
        try:
            token, jti = self._mint(request, deadline)
        except UpstreamRejected as exc:
            self._remember_rejection(key, exc)
            return self._stale_or_raise(cached, need, exc)
        except UpstreamUnavailable as exc:
            return self._stale_or_raise(cached, need, exc)
        self._memory.put(key, token)
        return Vended(token, "minted", jti)

    # -- minting ----------------------------------------------------------------------------------
    def _mint(self, request: VendRequest, deadline: Deadline) -> tuple[CachedToken, str]:
        started = time.perf_counter()
        try:
            key = self._keys.current()
            issued, issued_at = self._exchange(key, request, deadline)
        except UpstreamRejected as exc:
            if exc.upstream_code not in _ROTATION_CODES:
                self._count_upstream_error(exc.upstream_code)
                raise
            # The key may have been rotated since we last read it: re-read once, retry once if it changed.
            fresh_key = self._keys.refresh_now()
            if fresh_key.version_id == key.version_id:
                self._count_upstream_error(exc.upstream_code)
                raise
            logger.info("retrying with the rotated key", extra={"secret_version": fresh_key.version_id})
            issued, issued_at = self._exchange(fresh_key, request, deadline)
        except UpstreamUnavailable:
            self._count_upstream_error("unavailable")
            raise
        self._metrics.add_metric("MintLatency", "Milliseconds", (time.perf_counter() - started) * 1000)
        self._count("Mints")
        token = CachedToken(
            issued.access_token,
            issued_at + issued.expires_in,
            " ".join(request.scopes),
        )
        return token, issued.jti

    def _exchange(
        self, key: ServiceAccountKey, request: VendRequest, deadline: Deadline
    ) -> tuple[IssuedToken, float]:
        # The lifetime counts from before the request left, so we never overstate it.
        issued_at = self._clocks.wall()

        def sign() -> Assertion:
            return sign_assertion(
                key.private_key,
                key.account_id,
                self.settings.assertion_audience,
                now=self._clocks.signing(),
                new_jti=self._new_jti,
                kid=key.kid,
            )

        return self._endpoint.exchange(sign, request.scopes, deadline), issued_at

    # -- failure handling -------------------------------------------------------------------------
    def _stale_or_raise(
        self, cached: CachedToken | None, need: float, exc: UpstreamRejected | UpstreamUnavailable
    ) -> Vended:
        if cached is not None and cached.seconds_left(self._clocks.wall()) >= need:
            logger.warning("refresh failed; serving the cached token", extra={"error": exc.name})
            self._count("StaleServed")
            return Vended(cached, "stale")
        self._count("MintFailures")
        raise exc

    def _remember_rejection(self, key: str, exc: UpstreamRejected) -> Rejection | None:
        if exc.upstream_code != "invalid_scope":
            return None
        # A misconfigured caller must not hammer AIC: the answer stands for a minute.
        rejection = Rejection(
            exc.message, exc.upstream_code, exc.rejected_scopes, self._clocks.wall() + NEGATIVE_CACHE_SECONDS
        )
        if len(self._rejections) >= MAX_REMEMBERED_REJECTIONS:  # forget the expired ones first
            now = self._clocks.wall()
            self._rejections = {k: r for k, r in self._rejections.items() if r.until > now}
        self._rejections[key] = rejection
        return rejection

    def _raise_if_rejected(self, rejection: Rejection | None) -> None:
        if rejection is not None and rejection.until > self._clocks.wall():
            self._count("NegativeCacheHits")
            raise UpstreamRejected(
                rejection.message, upstream_code=rejection.upstream_code, rejected_scopes=rejection.scopes
            )

    def _read_table(self, key: str) -> TableEntry | None:
        try:
            return self._table.read(key)
        except CacheUnavailable as exc:
            logger.warning("token table unavailable; minting without it", extra={"reason": str(exc)})
            self._count("CacheUnavailable")
            return None

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._key_locks.get(key)
            if lock is None:
                if len(self._key_locks) > 4 * 256:
                    self._key_locks = {k: v for k, v in self._key_locks.items() if v.locked()}
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _count(self, name: str) -> None:
        self._metrics.add_metric(name, "Count", 1)

    def _count_upstream_error(self, code: str) -> None:
        self._metrics.add_metric(f"UpstreamErrors_{code}", "Count", 1)


def _fresher(a: CachedToken | None, b: CachedToken | None) -> CachedToken | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.expires_at >= b.expires_at else b
