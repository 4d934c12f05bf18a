"""Orchestration of one vend: policy, memory, table, lease, mint (DESIGN "The vend path").

Everything that can refuse a request (scopes, ALLOWED_SCOPES, caller policy) runs before any I/O.
Then the cheapest tier that has a token with enough validity answers; only the holder of the lease
mints, so there is one exchange per key per refresh cycle however many containers race.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from token_vendor import aws_budget
from token_vendor.assertion import Assertion, sign_assertion
from token_vendor.authorization import Authorizer
from token_vendor.cached_token import CachedToken, cache_key, fingerprint
from token_vendor.coordination import KeyLocks, RememberedRejections
from token_vendor.deadline import Deadline
from token_vendor.errors import (
    ConfigurationError,
    InvalidRequest,
    TokenVendorError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from token_vendor.key_source import KeySource, ServiceAccountKey
from token_vendor.memory_cache import MemoryCache
from token_vendor.scopes import Scopes, check_allowed
from token_vendor.settings import Settings
from token_vendor.token_endpoint import IssuedToken, TokenEndpoint
from token_vendor.token_table import (
    ANY_VERSION,
    CacheMisconfigured,
    CacheUnavailable,
    Rejection,
    Retired,
    TableEntry,
    TokenTable,
)
from token_vendor.vend_request import VendRequest

logger = logging.getLogger("token_vendor").getChild(__name__)

# The lease is short so that a dead holder costs little; a live holder renews it before each retry and
# never works past it (CONTRACT section 8: "a lease holder never works past its lease").
LEASE_SECONDS = 10.0
LEASE_MARGIN_SECONDS = 0.5  # the holder's work ends this much before its lease does
NEGATIVE_CACHE_SECONDS = 60.0
POLL_FIRST = 0.05
POLL_MAX = 0.5
# While another container may be minting, a failed table call is retried this many times before this
# container gives up on the shared cache and mints on its own (a second exchange, but never an error).
MAX_TABLE_FAILURES = 3
# Less time than this left in the invocation: fail fast instead of starting a network call (a DynamoDB
# brownout can make each call take seconds).
MIN_WORK_SECONDS = 0.2
# A refresh while the cached token still serves: one attempt, bounded, then a fleet-wide backoff.
REFRESH_ATTEMPT_SECONDS = 2.0
BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 60.0
# While AIC refuses the key, the secret is re-read at most this often, so a rotation shows at once.
KEY_RECHECK_SECONDS = 10.0
_ROTATION_CODES = frozenset({"invalid_client", "invalid_grant"})
MAX_LOCAL_RETIREMENTS = 256
RECORD_EVERY_SECONDS = 300.0  # "vended recently": at most one write per container per scope set per 5 min
SCHEDULE_CALLER = "scheduled-refresh"


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
    retired: str | None = None  # the fingerprint this vend retired (CONTRACT section 5)
    retire_rate_limited: bool = False  # a report within MIN_REFRESH_INTERVAL_SECONDS of the last retirement


@dataclass
class Clocks:
    """``wall`` times the caches (tests move it); ``signing`` stamps assertions and stays real, because
    AIC checks ``iat``/``exp`` against its own clock."""

    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    signing: Callable[[], float] = time.time


@dataclass
class _Pending:
    """One request on the slow path: what it needs, what it already has, and how it may mint."""

    key: str
    request: VendRequest
    need: float  # seconds of validity the caller must get
    deadline: Deadline
    cached: CachedToken | None  # the better of the memory and table copies, if any
    tier: str  # where ``cached`` came from
    unreadable: bool = False  # the table holds a token we cannot trust: the lease ignores its expiry
    backoff: float | None = None  # the table's last refresh backoff
    retired: Retired | None = None  # the table's last retirement, carried across refreshes
    lookahead: float = 0.0  # the scheduled refresh: fresh for this much longer than a caller needs
    last_vended: float | None = None  # the item's, carried across a scheduled refresh's store

    def cached_serves(self, now: float) -> bool:
        return self.cached is not None and self.cached.seconds_left(now) >= self.need


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
        self._authorizer = Authorizer(settings, on_denied=lambda: self._count("AccessDenied"))
        # The cache identifies the account without reading the secret, so a table hit needs no key.
        self._account_ref = settings.service_account_id or settings.secret_id
        self._rejections = RememberedRejections(self._clocks.wall)
        self._locks = KeyLocks()
        self._local_retirements: dict[str, float] = {}  # when the table is unusable (CONTRACT 8)
        self._recorded: dict[str, float] = {}  # when this container last told the table a set is in use
        self._misconfiguration_logged = False
        table.on_misconfigured = self._note_misconfigured

    # -- policy (pure, before any I/O) ------------------------------------------------------------
    def authorize(self, request: VendRequest) -> None:
        self._authorizer.authorize(request)

    # -- the vend path ----------------------------------------------------------------------------
    def vend(self, request: VendRequest, deadline: Deadline) -> Vended:
        self.authorize(request)
        with aws_budget.within(deadline):  # every AWS call of this vend ends by its deadline
            return self._vend(request, deadline)

    def _vend(self, request: VendRequest, deadline: Deadline) -> Vended:
        key = cache_key(self.settings.tenant_fqdn, self._account_ref, request.scopes)
        vended = self._vend_once(key, request, deadline)
        self._note_vended(key)
        return vended

    def _note_vended(self, key: str) -> None:
        """Tell the scheduled refresh this scope set is in use: one write per execution environment per
        scope set per RECORD_EVERY_SECONDS, never one per vend (docs/decisions.md)."""
        if self.settings.keep_warm_seconds <= 0:
            return
        now = self._clocks.wall()
        last = self._recorded.get(key)
        if last is not None and 0 <= now - last < RECORD_EVERY_SECONDS:
            return
        self._recorded[key] = now
        while len(self._recorded) > MAX_LOCAL_RETIREMENTS:
            self._recorded.pop(next(iter(self._recorded)))
        try:
            self._table.note_vended(key, now)
        except CacheUnavailable as exc:
            logger.warning("could not record the scope set as in use", extra={"reason": str(exc)})

    # -- the scheduled refresh (scheduled_refresh.py holds the rule) --------------------------------
    @property
    def table(self) -> TokenTable:
        return self._table

    @property
    def account_ref(self) -> str:
        """What the cache key names the account by (the id when set, else the secret id)."""
        return self._account_ref

    def fresh_seconds(self, lifetime: float) -> float:
        """Seconds a token issued for ``lifetime`` must have left to be served without a refresh."""
        return self._fresh(CachedToken("", 0.0, "", lifetime), float(self.settings.min_validity_seconds))

    def refresh_ahead(self, scopes: Scopes, lookahead: float, deadline: Deadline) -> tuple[str, str | None]:
        """Refresh the fleet's token for ``scopes`` if it is due within ``lookahead``, through the lease
        (one exchange fleet-wide, one attempt, backoff and rejections respected). Returns the outcome
        (``minted``, ``fresh`` or ``stale``) and the token now stored, if one was minted."""
        check_allowed(scopes, self.settings.allowed_scopes)
        request = VendRequest(scopes, None, SCHEDULE_CALLER, identified="schedule")
        key = cache_key(self.settings.tenant_fqdn, self._account_ref, scopes)
        need = float(self.settings.min_validity_seconds)
        wait = max(deadline.remaining() - MIN_WORK_SECONDS, 0.0)
        with aws_budget.within(deadline), self._locks.hold(key, wait) as acquired:
            if not acquired:
                return "fresh", None  # a caller of this container is refreshing it now
            vended = self._slow_path(key, request, need, deadline, lookahead)
        if vended.tier == "minted":
            return "minted", vended.token.access_token
        return ("stale", None) if vended.tier == "stale" else ("fresh", None)

    def _vend_once(self, key: str, request: VendRequest, deadline: Deadline) -> Vended:
        need = float(max(self.settings.min_validity_seconds, request.min_validity or 0))
        hit = self._memory_hit(key, need, request.rejected)
        if hit is not None:
            return hit
        # One slow path per key per container; the others wait here, but never past their deadline.
        wait = max(deadline.remaining() - MIN_WORK_SECONDS, 0.0)
        with self._locks.hold(key, wait) as acquired:
            if not acquired:
                return self._after_lock_timeout(key, need, request.rejected)
            hit = self._memory_hit(key, need, request.rejected)
            if hit is not None:
                return hit
            if deadline.remaining() < MIN_WORK_SECONDS:
                raise UpstreamUnavailable("too little time left in this invocation to reach the cache or AIC")
            if request.rejected is not None:
                return self._retire(key, request, need, deadline)
            return self._slow_path(key, request, need, deadline)

    def _after_lock_timeout(self, key: str, need: float, rejected: str | None) -> Vended:
        """Another request of this container held the key's slow path too long (it may need more validity
        than is cached, from an AIC that is down). A token of the fleet's that serves this request still
        does (found by simulation, seed 551), unless it is the one this caller reports (seed 378)."""
        entry = self._read_table(key)
        token = entry.token if entry is not None else None
        if (
            token is not None
            and token.seconds_left(self._clocks.wall()) >= need
            and fingerprint(token.access_token) != rejected
        ):
            self._count("StaleServed")
            return Vended(token, "stale")
        raise UpstreamUnavailable(
            "another request of this execution environment is getting this token; it did not finish in time"
        )

    def _fresh(self, token: CachedToken | None, need: float) -> float:
        """Seconds a token must have left to be served without a refresh. A token AIC issued for less
        than twice the refresh-ahead window is refreshed at half its life, not on every call."""
        ahead = float(self.settings.refresh_ahead_seconds)
        if token is not None and token.lifetime > 0:
            ahead = min(ahead, token.lifetime / 2)
        return max(need, ahead)

    def _memory_hit(self, key: str, need: float, rejected: str | None = None) -> Vended | None:
        hit = self._memory.get_checked(key, self._clocks.wall())
        if hit is not None and rejected is not None and fingerprint(hit.access_token) == rejected:
            return None  # the caller reports this very token: never hand it back
        if hit is not None and hit.seconds_left(self._clocks.wall()) >= self._fresh(hit, need):
            self._count("MemoryHits")
            return Vended(hit, "memory")
        return None

    def _slow_path(
        self, key: str, request: VendRequest, need: float, deadline: Deadline, lookahead: float = 0.0
    ) -> Vended:
        in_memory = self._memory.get(key)
        local = self._rejections.get(key)
        if local is not None and self._holds(local):
            memory_only = _Pending(key, request, need, deadline, in_memory, "memory")
            if memory_only.cached_serves(self._clocks.wall()):
                return self._serve_despite(local, memory_only)
        entry = self._read_table(key)
        if entry is None:  # shared cache down: degrade to minting without it (unless AIC refused)
            pending = _Pending(key, request, need, deadline, in_memory, "memory")
            if local is not None and self._holds(local):
                return self._serve_despite(local, pending)
            return self._mint_unshared(pending)
        if local is not None and self._holds(local):
            # A token of the fleet's that still serves is served (found by simulation, seed 549).
            best_known = _fresher(in_memory, entry.token)
            tier = "table" if best_known is not None and best_known is entry.token else "memory"
            return self._serve_despite(local, _Pending(key, request, need, deadline, best_known, tier))
        if entry.token is not None:
            hit = self._table_hit(key, entry, self._fresh(entry.token, need) + lookahead)
            if hit is not None:
                return hit
        best = _fresher(in_memory, entry.token)
        tier = "table" if best is not None and best is entry.token else "memory"
        pending = _Pending(
            key,
            request,
            need,
            deadline,
            best,
            tier,
            entry.unreadable,
            entry.refresh_backoff,
            entry.retired,
            lookahead,
            entry.last_vended,
        )
        self._refuse_if_short(best, need)
        if entry.rejection is not None and self._holds(entry.rejection):
            return self._serve_despite(entry.rejection, pending)
        now = self._clocks.wall()
        if pending.cached_serves(now) and (entry.refresh_not_before or 0) > now:
            # A refresh failed moments ago somewhere in the fleet: nobody tries again until the backoff ends.
            self._count("RefreshBackoffServed")
            return Vended(pending.cached, tier)  # type: ignore[arg-type]
        return self._lease_or_wait(pending)

    # -- retirement: a caller reports a token AIC refused (CONTRACT section 5) ------------------------
    def _retire(self, key: str, request: VendRequest, need: float, deadline: Deadline) -> Vended:
        """Retire the reported token fleet-wide and mint one replacement (single flight, rate-limited).

        Make-before-break: the reported token stays in the table for everyone else until its replacement
        is stored; the reporters wait for that replacement and never get the reported token back.
        """
        rejected = request.rejected or ""
        interval = float(self.settings.min_refresh_interval_seconds)
        in_memory = self._memory.get(key)
        entry = self._read_table(key)
        if entry is None:  # shared cache down: this container replaces its own copy, rate-limited here
            return self._retire_unshared(key, request, need, deadline, in_memory, interval)
        if in_memory is not None and fingerprint(in_memory.access_token) == rejected:
            self._memory.drop(key)
        delay = POLL_FIRST
        refused = 0
        while True:
            stored = entry.token
            if stored is None or fingerprint(stored.access_token) != rejected:
                # Already replaced (or never ours to retire): the current token, through the normal path.
                return self._slow_path(key, replace(request, rejected=None), need, deadline)
            now = self._clocks.wall()
            if entry.retired is not None and now - entry.retired.at < interval:
                if stored.seconds_left(now) < need:  # rate-limited, but it cannot serve: refresh it
                    return self._slow_path(key, replace(request, rejected=None), need, deadline)
                self._count("RetireRateLimited")
                self._memory.put(key, stored, now)
                return Vended(stored, "table", retire_rate_limited=True)
            holder = secrets.token_hex(16)
            lease = min(self._lease_seconds, max(deadline.remaining(), 0.1))
            try:
                current = self._table.try_retire(key, holder, lease, rejected, interval)
            except CacheUnavailable as exc:
                self._note_cache_trouble(exc)
                raise UpstreamUnavailable("the token cache is unavailable; report the token again") from exc
            if current.granted:
                return self._replace_retired(key, request, need, deadline, holder, lease)
            if current.lease_until is not None and current.lease_until > now:  # another reporter is on it
                self._count("LeaseWaits")
                if delay >= deadline.remaining():
                    raise UpstreamUnavailable(
                        "the reported token is being replaced; it did not finish in time"
                    )
                self._clocks.sleep(delay)
                delay = min(delay * 1.6, POLL_MAX)
                if deadline.remaining() < MIN_WORK_SECONDS:
                    raise UpstreamUnavailable(
                        "the reported token is being replaced; it did not finish in time"
                    )
                refreshed = self._read_table(key)
                if refreshed is None:
                    raise UpstreamUnavailable("the token cache is unavailable; report the token again")
                entry = refreshed
            else:
                refused += 1
                if refused > 2:  # the item refuses the retirement for a reason no read explains (altered)
                    raise UpstreamUnavailable("the reported token could not be retired now; report it again")
                entry = current

    def _retire_unshared(
        self,
        key: str,
        request: VendRequest,
        need: float,
        deadline: Deadline,
        in_memory: CachedToken | None,
        interval: float,
    ) -> Vended:
        """The table cannot coordinate the fleet: reports are rate-limited per execution environment, so a
        storm of reports costs this container one exchange per interval, not one each (CONTRACT 8)."""
        rejected = request.rejected or ""
        now = self._clocks.wall()
        last = self._local_retirements.get(key)
        if (
            last is not None
            and 0 <= now - last < interval
            and in_memory is not None
            and in_memory.seconds_left(now) >= need
        ):
            self._count("RetireRateLimited")
            return Vended(in_memory, "memory", retire_rate_limited=True)
        if in_memory is not None and fingerprint(in_memory.access_token) == rejected:
            self._memory.drop(key)
            in_memory = None
        vended = self._mint_unshared(_Pending(key, request, need, deadline, None, "memory"))
        self._local_retirements[key] = now
        while len(self._local_retirements) > MAX_LOCAL_RETIREMENTS:
            self._local_retirements.pop(next(iter(self._local_retirements)))
        self._count("TokenRetired")
        return replace(vended, retired=rejected)

    def _replace_retired(
        self, key: str, request: VendRequest, need: float, deadline: Deadline, holder: str, lease: float
    ) -> Vended:
        rejected = request.rejected or ""
        pending = _Pending(key, request, need, deadline, None, "table")  # nothing stale for a reporter
        clock = deadline.clock
        work = deadline.earliest(Deadline.after(lease - LEASE_MARGIN_SECONDS, clock))
        try:
            token, jti = self._mint(request, work, None, None)
        except (UpstreamRejected, UpstreamUnavailable) as exc:
            self._table.release(key, holder)
            return self._stale_or_raise(pending, exc)  # raises: the reported token is never served back
        except BaseException:
            self._table.release(key, holder)
            raise
        retired = Retired(rejected, self._clocks.wall())
        try:
            self._table.store(key, token, holder, retired, last_vended=self._clocks.wall())
        except CacheUnavailable as exc:
            self._note_cache_trouble(exc)
            self._table.release(key, holder)
        self._memory.put(key, token, self._clocks.wall())
        self._count("TokenRetired")
        logger.info(
            "token retired on a caller's report", extra={"retired": rejected, "caller": request.caller}
        )
        self._refuse_if_short(token, need)
        return Vended(token, "minted", jti, retired=rejected)

    # -- the lease (see token_table's timeline) ----------------------------------------------------
    def _lease_or_wait(self, pending: _Pending) -> Vended:
        """Take the lease and mint, or serve what another holder stores.

        Steps: try the lease; won -> mint as holder; lost -> serve what the item now offers (a token
        stored by the last holder, a remembered rejection, or the cached token while someone refreshes);
        else wait, re-read and try again until the deadline. Table trouble degrades to minting unshared.
        """
        delay = POLL_FIRST
        failures = 0  # consecutive table failures while others may be minting
        while True:
            holder = secrets.token_hex(16)  # the fencing value for this lease
            lease = min(self._lease_seconds, max(pending.deadline.remaining(), 0.1))
            refresh = pending.cached_serves(self._clocks.wall())
            fresh = (
                None if pending.unreadable else self._fresh(pending.cached, pending.need) + pending.lookahead
            )
            try:
                current = self._table.try_lease(
                    pending.key, holder, lease, fresh, key_version=self._key_version(), refresh=refresh
                )
            except CacheUnavailable as exc:
                self._note_cache_trouble(exc)
                failures += 1
                if failures >= MAX_TABLE_FAILURES or delay >= pending.deadline.remaining():
                    return self._mint_unshared(pending)
                self._clocks.sleep(delay)  # a blip: one more look before minting a second token
                continue
            failures = 0
            if current.granted:
                try:  # AIC's last token lives and is shorter than this need: minting again gives the same
                    self._refuse_if_short(current.token, pending.need)
                except InvalidRequest:
                    self._table.release(pending.key, holder)
                    raise
                return self._mint_as_holder(pending, holder, lease, refresh)
            served = self._serve_from_item(pending, current)
            if served is not None:
                return served
            self._count("LeaseWaits")
            if delay >= pending.deadline.remaining():
                raise UpstreamUnavailable(
                    "another request is minting this token and it did not finish in time"
                )
            self._clocks.sleep(delay)
            delay = min(delay * 1.6, POLL_MAX)
            if pending.deadline.remaining() < MIN_WORK_SECONDS:
                raise UpstreamUnavailable(
                    "another request is minting this token and it did not finish in time"
                )
            entry = self._read_table(pending.key)
            if entry is None:
                failures += 1
                if failures >= MAX_TABLE_FAILURES:
                    return self._mint_unshared(pending)
                continue
            failures = 0
            served = self._serve_from_item(pending, entry)
            if served is not None:
                return served

    def _serve_from_item(self, pending: _Pending, entry: TableEntry) -> Vended | None:
        """What a caller that did not get the lease can be served from the item as it stands, if anything."""
        stored = self._table_hit(pending.key, entry, pending.need)
        if stored is not None:
            return stored
        self._refuse_if_short(entry.token, pending.need)
        if entry.rejection is not None and self._holds(entry.rejection):
            return self._serve_despite(entry.rejection, pending)
        if pending.cached_serves(self._clocks.wall()):
            # Someone else is refreshing (or a refresh backoff runs): the token we have still serves.
            self._count("RefreshInProgressServed")
            return Vended(pending.cached, pending.tier)  # type: ignore[arg-type]
        pending.unreadable = entry.unreadable
        pending.backoff = entry.refresh_backoff
        pending.retired = entry.retired
        return None

    def _mint_as_holder(self, pending: _Pending, holder: str, lease: float, refresh: bool) -> Vended:
        clock = pending.deadline.clock
        work = pending.deadline.earliest(Deadline.after(lease - LEASE_MARGIN_SECONDS, clock))
        attempts = None
        renew: Callable[[], Deadline | None] | None = None
        if refresh:  # the cached token still serves: one short attempt, then the fleet backs off
            work = work.earliest(Deadline.after(REFRESH_ATTEMPT_SECONDS, clock))
            attempts = 1
        else:

            def renew() -> Deadline | None:
                """Before a retry: extend the lease (fenced), or stop if another container took it."""
                try:
                    if not self._table.renew(pending.key, holder, self._lease_seconds):
                        return None
                except CacheUnavailable as exc:
                    self._note_cache_trouble(exc)
                    return work  # cannot renew: keep to the lease we have
                return pending.deadline.earliest(
                    Deadline.after(self._lease_seconds - LEASE_MARGIN_SECONDS, clock)
                )

        try:
            token, jti = self._mint(pending.request, work, attempts, renew)
        except UpstreamRejected as exc:
            rejection = self._remember_rejection(pending.key, exc)
            self._table.release(pending.key, holder, rejection)
            return self._stale_or_raise(pending, exc)
        except UpstreamUnavailable as exc:
            backoff = None
            if refresh:
                previous = pending.backoff
                backoff = BACKOFF_FIRST_SECONDS if not previous else min(BACKOFF_MAX_SECONDS, previous * 2)
            self._table.release(pending.key, holder, backoff=backoff)
            return self._stale_or_raise(pending, exc)
        except BaseException:
            self._table.release(pending.key, holder)
            raise
        self._memory.put(pending.key, token, self._clocks.wall())
        try:
            # A caller's vend is a use; the scheduled refresh's own mint is not (an idle set must expire).
            by_caller = pending.request.caller != SCHEDULE_CALLER
            now = self._clocks.wall()
            used = now if by_caller else pending.last_vended
            if self._table.store(pending.key, token, holder, pending.retired, last_vended=used) and by_caller:
                self._recorded[pending.key] = now  # the store recorded the use: no separate write
        except CacheUnavailable as exc:
            logger.warning("could not store the token in the table", extra={"reason": str(exc)})
            self._note_cache_trouble(exc)
            self._table.release(pending.key, holder)
        self._refuse_if_short(token, pending.need)
        return Vended(token, "minted", jti)

    def _mint_unshared(self, pending: _Pending) -> Vended:
        attempts = None
        work = pending.deadline
        if pending.cached_serves(self._clocks.wall()):
            attempts = 1
            work = work.earliest(Deadline.after(REFRESH_ATTEMPT_SECONDS, work.clock))
        try:
            token, jti = self._mint(pending.request, work, attempts, None)
        except UpstreamRejected as exc:
            self._remember_rejection(pending.key, exc)
            return self._stale_or_raise(pending, exc)
        except UpstreamUnavailable as exc:
            return self._stale_or_raise(pending, exc)
        self._memory.put(pending.key, token, self._clocks.wall())
        self._refuse_if_short(token, pending.need)
        return Vended(token, "minted", jti)

    # -- minting ----------------------------------------------------------------------------------
    def _mint(
        self,
        request: VendRequest,
        deadline: Deadline,
        attempts: int | None,
        renew: Callable[[], Deadline | None] | None,
    ) -> tuple[CachedToken, str]:
        started = time.perf_counter()
        try:
            key = self._keys.current()
            issued, issued_at = self._exchange(key, request, deadline, attempts, renew)
        except UpstreamRejected as exc:
            if exc.upstream_code not in _ROTATION_CODES:
                self._count_upstream_error(exc.upstream_code)
                raise
            # The key may have been rotated since we last read it: re-read once, retry once if it changed.
            fresh_key = self._keys.refresh_now()
            if fresh_key.version_id == key.version_id:
                self._count_upstream_error(exc.upstream_code)
                raise self._explain_key_rejection(exc, fresh_key) from exc
            logger.info("retrying with the rotated key", extra={"secret_version": fresh_key.version_id})
            try:
                issued, issued_at = self._exchange(fresh_key, request, deadline, attempts, renew)
            except UpstreamRejected as again:
                self._count_upstream_error(again.upstream_code)
                if again.upstream_code in _ROTATION_CODES:
                    raise self._explain_key_rejection(again, fresh_key) from again
                raise
        except UpstreamUnavailable:
            self._count_upstream_error("unavailable")
            raise
        except ConfigurationError:  # a broken or unreadable secret: no token can be minted until it is fixed
            self._count("MintFailures")
            raise
        self._metrics.add_metric("MintLatency", "Milliseconds", (time.perf_counter() - started) * 1000)
        self._count("Mints")
        token = CachedToken(
            issued.access_token,
            issued_at + issued.expires_in,
            " ".join(request.scopes),
            float(issued.expires_in),
        )
        return token, issued.jti

    def _explain_key_rejection(self, exc: UpstreamRejected, key: ServiceAccountKey) -> UpstreamRejected:
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
        key: ServiceAccountKey,
        request: VendRequest,
        deadline: Deadline,
        attempts: int | None,
        renew: Callable[[], Deadline | None] | None,
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

        issued = self._endpoint.exchange(
            sign, request.scopes, deadline, attempts=attempts, before_retry=renew
        )
        return issued, issued_at

    # -- failure handling -------------------------------------------------------------------------
    def _stale_or_raise(self, pending: _Pending, exc: UpstreamRejected | UpstreamUnavailable) -> Vended:
        if pending.cached is not None and pending.cached_serves(self._clocks.wall()):
            logger.warning("refresh failed; serving the cached token", extra={"error": exc.name})
            self._count("StaleServed")
            return Vended(pending.cached, "stale")
        self._count("MintFailures")
        raise exc

    def _serve_despite(self, rejection: Rejection, pending: _Pending) -> Vended:
        """A remembered rejection suppresses attempts; a cached token that still serves is served."""
        if pending.cached is not None and pending.cached_serves(self._clocks.wall()):
            self._count("StaleServed")
            return Vended(pending.cached, "stale")
        self._count("NegativeCacheHits")
        # Only scopes this request asked for are named: nothing read from the table is echoed.
        scopes = tuple(s for s in rejection.scopes if s in pending.request.scopes)
        raise UpstreamRejected(
            rejection_message(rejection.upstream_code, scopes),
            upstream_code=rejection.upstream_code,
            rejected_scopes=scopes,
        )

    def _refuse_if_short(self, token: CachedToken | None, need: float) -> None:
        """Never hand out less validity than asked; and while AIC's last token for this scope set lives,
        do not mint again for a need its lifetime cannot meet."""
        if token is None or token.lifetime <= 0 or token.lifetime >= need:
            return
        if token.seconds_left(self._clocks.wall()) <= 0:
            return
        self._count("ShortLifetimeRefused")
        raise InvalidRequest(
            f"minValiditySeconds asks for {int(need)} s, but AIC issues tokens for this scope set that "
            f"live {int(token.lifetime)} s; ask for at most {int(token.lifetime)}"
        )

    def _remember_rejection(self, key: str, exc: UpstreamRejected) -> Rejection | None:
        if exc.upstream_code == "invalid_scope":
            version = ANY_VERSION
        elif exc.upstream_code in _ROTATION_CODES and exc.version:
            version = exc.version  # a new secret version clears it at once
        else:
            return None
        # A misconfigured caller or a refused key must not hammer AIC: the answer stands for a minute.
        rejection = Rejection(
            exc.upstream_code,
            exc.rejected_scopes,
            self._clocks.wall() + NEGATIVE_CACHE_SECONDS,
            version,
        )
        self._rejections.put(key, rejection)
        return rejection

    def _holds(self, rejection: Rejection) -> bool:
        if rejection.until <= self._clocks.wall():
            return False
        if rejection.version == ANY_VERSION:
            return True
        try:  # a refused key's rejection ends when the secret has a new version
            return self._keys.current(max_age=KEY_RECHECK_SECONDS).version_id == rejection.version
        except TokenVendorError:
            return True

    def _key_version(self) -> str | None:
        """The secret version in use, if a key is loaded (the lease lets a new version past a rejection)."""
        return self._keys.loaded_version()

    def _read_table(self, key: str) -> TableEntry | None:
        try:
            return self._table.read(key)
        except CacheUnavailable as exc:
            self._note_cache_trouble(exc)
            return None

    def _note_cache_trouble(self, exc: CacheUnavailable) -> None:
        if isinstance(exc, CacheMisconfigured):
            self._note_misconfigured(str(exc))
            return
        logger.warning("token table unavailable; minting without it", extra={"reason": str(exc)})
        self._count("CacheUnavailable")

    def _note_misconfigured(self, reason: str) -> None:
        """A table or KMS key that cannot work (missing, denied, disabled) is an operator's problem, not
        a blip: ERROR once per execution environment, and a metric on every occurrence."""
        self._count("CacheMisconfigured")
        if not self._misconfiguration_logged:
            self._misconfiguration_logged = True
            logger.error(
                "token cache is misconfigured; every container mints on its own until it is fixed",
                extra={
                    "table": self._table.name,
                    "cache_key_id": self.settings.cache_key_id,
                    "reason": reason,
                },
            )

    def _table_hit(self, key: str, entry: TableEntry, at_least: float) -> Vended | None:
        if entry.token is None or entry.token.seconds_left(self._clocks.wall()) < at_least:
            return None
        self._memory.put(key, entry.token, self._clocks.wall())
        self._count("TableHits")
        return Vended(entry.token, "table")

    def _count(self, name: str) -> None:
        self._metrics.add_metric(name, "Count", 1)

    def _count_upstream_error(self, code: str) -> None:
        self._metrics.add_metric(f"UpstreamErrors_{code}", "Count", 1)


def key_rejection_message(code: str) -> str:
    return (
        f"AIC refused the service account's key ({code}); the token vendor's log for this request names "
        "the service account and the secret version to check"
    )


def rejection_message(code: str, scopes: tuple[str, ...]) -> str:
    """What a caller reads for a remembered rejection, composed here (CONTRACT section 7)."""
    if code in _ROTATION_CODES:
        return key_rejection_message(code)
    if scopes:
        return f"the service account is not granted: {' '.join(scopes)} (upstream {code}, remembered)"
    return f"AIC refused this scope set ({code}, remembered)"


def _fresher(a: CachedToken | None, b: CachedToken | None) -> CachedToken | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.expires_at >= b.expires_at else b
