"""Orchestration of one vend: policy, memory, table, lease, mint (DESIGN "The vend path").

Everything that can refuse a request (scopes, ALLOWED_SCOPES, caller policy) runs before any I/O.
Then the cheapest tier that has a token with enough validity answers; only the holder of the lease
mints, so there is one exchange per key per refresh cycle however many containers race.
"""

from __future__ import annotations

import logging
from typing import Protocol

from token_vendor.adapters.aws import bounded_client
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.adapters.aws.token_table import (
    CacheUnavailable,
    TokenTable,
)
from token_vendor.kernel.cached_token import CachedToken, Vended, fingerprint
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import (
    UpstreamUnavailable,
)
from token_vendor.kernel.scopes import Scopes, check_allowed
from token_vendor.kernel.settings import Settings
from token_vendor.kernel.vend_request import VendRequest
from token_vendor.vend.context import (
    MAX_LOCAL_RETIREMENTS,
    MIN_WORK_SECONDS,
    RECORD_EVERY_SECONDS,
    SCHEDULE_CALLER,
    Clocks,
    Pending,
    VendContext,
    fresher,
)
from token_vendor.vend.fleet_lease import FleetLease
from token_vendor.vend.locks import KeyLocks
from token_vendor.vend.minting import Minter
from token_vendor.vend.retirement import Retirement

logger = logging.getLogger("token_vendor").getChild(__name__)

# What callers of the vendor use, importable from here as before the vendor was split into rooms.
__all__ = ["Clocks", "SlowPath", "TokenVendor", "Vended"]


class SlowPath:
    """A memory miss: this container's remembered rejection, the table, then the fleet's lease."""

    def __init__(self, context: VendContext, minter: Minter, lease: FleetLease) -> None:
        self._ctx = context
        self._minter = minter
        self._lease = lease

    def serve(
        self, key: str, request: VendRequest, need: float, deadline: Deadline, lookahead: float = 0.0
    ) -> Vended:
        in_memory = self._ctx.memory.get(key)
        local = self._minter.remembered(key)
        if local is not None and self._minter.holds(local):
            memory_only = Pending(key, request, need, deadline, in_memory, "memory")
            if memory_only.cached_serves(self._ctx.clocks.wall()):
                return self._minter.serve_despite(local, memory_only)
        entry = self._ctx.read_table(key)
        if entry is None:  # shared cache down: degrade to minting without it (unless AIC refused)
            pending = Pending(key, request, need, deadline, in_memory, "memory")
            if local is not None and self._minter.holds(local):
                return self._minter.serve_despite(local, pending)
            if deadline.remaining() < MIN_WORK_SECONDS:
                # The read was never sent (no time left): that says nothing of the table, and an exchange
                # now would be a second one for the fleet (a process that stalls can wake with 0.08 s
                # left and would mint beside the fleet's stored token).
                too_late = UpstreamUnavailable(
                    "too little time left in this invocation to reach the cache or AIC"
                )
                return self._minter.stale_or_raise(pending, too_late)
            return self._lease.mint_unshared(pending)
        if local is not None and self._minter.holds(local):
            # A token of the fleet's that still serves is served, before this container's own memory.
            best_known = fresher(in_memory, entry.token)
            tier = "table" if best_known is not None and best_known is entry.token else "memory"
            return self._minter.serve_despite(local, Pending(key, request, need, deadline, best_known, tier))
        if entry.token is not None:
            hit = self._ctx.table_hit(key, entry, self._ctx.fresh(entry.token, need) + lookahead)
            if hit is not None:
                return hit
        best = fresher(in_memory, entry.token)
        tier = "table" if best is not None and best is entry.token else "memory"
        pending = Pending(
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
        self._ctx.refuse_if_short(best, need)
        if entry.rejection is not None and self._minter.holds(entry.rejection):
            return self._minter.serve_despite(entry.rejection, pending)
        now = self._ctx.clocks.wall()
        if pending.cached_serves(now) and (entry.refresh_not_before or 0) > now:
            # A refresh failed moments ago somewhere in the fleet: nobody tries again until the backoff ends.
            self._ctx.count("RefreshBackoffServed")
            return Vended(pending.cached, tier)  # type: ignore[arg-type]
        return self._lease.lease_or_wait(pending)


class Authorize(Protocol):
    """Who may have which scope: the access wing's ``Authorizer``, handed in by the wiring (it sits above)."""

    def authorize(self, request: VendRequest) -> None: ...


class TokenVendor:
    """The facade: authorize, vend, and the scheduled refresh's entry points."""

    # No attribute beyond these: a test that patches a collaborator's method on the facade fails loudly.
    __slots__ = ("_authorizer", "_locks", "_memory", "_retirement", "_slow", "context", "minter")

    def __init__(
        self,
        context: VendContext,
        *,
        authorizer: Authorize,
        slow_path: SlowPath,
        retirement: Retirement,
        minter: Minter,
        locks: KeyLocks,
    ) -> None:
        self.context = context
        self.minter = minter  # for tests that watch the exchange
        self._authorizer = authorizer
        self._slow = slow_path
        self._retirement = retirement
        self._locks = locks
        self._memory = context.memory

    @property
    def settings(self) -> Settings:
        return self.context.settings

    # -- policy (pure, before any I/O) ------------------------------------------------------------
    def authorize(self, request: VendRequest) -> None:
        self._authorizer.authorize(request)

    # -- the vend path ----------------------------------------------------------------------------
    def vend(self, request: VendRequest, deadline: Deadline) -> Vended:
        self.authorize(request)
        with bounded_client.within(deadline):  # every AWS call of this vend ends by its deadline
            return self._vend(request, deadline)

    def _vend(self, request: VendRequest, deadline: Deadline) -> Vended:
        key = cache_key(self.context.settings.tenant_fqdn, self.context.account_ref, request.scopes)
        vended = self._vend_once(key, request, deadline)
        wrote = self._note_vended(key)
        if wrote and vended.token.seconds_left(self.context.clocks.wall()) < self._need(request):
            # Recording the use took time (a write retried after a fault): the token chosen before it no
            # longer has what the caller asked for (599.9 s served for 600 asked). Choose again; this pass
            # records nothing.
            self.context.count("ChosenAgain")
            vended = self._vend_once(key, request, deadline)
        return vended

    def _need(self, request: VendRequest) -> float:
        return float(max(self.context.settings.min_validity_seconds, request.min_validity or 0))

    def _note_vended(self, key: str) -> bool:
        """Tell the scheduled refresh this scope set is in use: one write per execution environment per
        scope set per RECORD_EVERY_SECONDS, never one per vend (docs/decisions.md). True if it wrote (or
        tried to): time passed after the token was chosen."""
        if self.context.settings.keep_warm_seconds <= 0:
            return False
        now = self.context.clocks.wall()
        last = self.context.recorded.get(key)
        if last is not None and 0 <= now - last < RECORD_EVERY_SECONDS:
            return False
        self.context.recorded[key] = now
        while len(self.context.recorded) > MAX_LOCAL_RETIREMENTS:
            self.context.recorded.pop(next(iter(self.context.recorded)))
        try:
            self.context.table.note_vended(key, now)
        except CacheUnavailable as exc:
            logger.warning("could not record the scope set as in use", extra={"reason": str(exc)})
        return True

    # -- the scheduled refresh (scheduled_refresh.py holds the rule) --------------------------------
    @property
    def table(self) -> TokenTable:
        return self.context.table

    @property
    def account_ref(self) -> str:
        """What the cache key names the account by (the id when set, else the secret id)."""
        return self.context.account_ref

    def fresh_seconds(self, lifetime: float) -> float:
        """Seconds a token issued for ``lifetime`` must have left to be served without a refresh."""
        return self.context.fresh(
            CachedToken("", 0.0, "", lifetime), float(self.context.settings.min_validity_seconds)
        )

    def refresh_ahead(self, scopes: Scopes, lookahead: float, deadline: Deadline) -> tuple[str, str | None]:
        """Refresh the fleet's token for ``scopes`` if it is due within ``lookahead``, through the lease
        (one exchange fleet-wide, one attempt, backoff and rejections respected). Returns the outcome
        (``minted``, ``fresh`` or ``stale``) and the token now stored, if one was minted."""
        check_allowed(scopes, self.context.settings.allowed_scopes)
        request = VendRequest(scopes, None, SCHEDULE_CALLER, identified="schedule")
        key = cache_key(self.context.settings.tenant_fqdn, self.context.account_ref, scopes)
        need = float(self.context.settings.min_validity_seconds)
        wait = max(deadline.remaining() - MIN_WORK_SECONDS, 0.0)
        with bounded_client.within(deadline), self._locks.hold(key, wait) as acquired:
            if not acquired:
                return "fresh", None  # a caller of this container is refreshing it now
            vended = self._slow.serve(key, request, need, deadline, lookahead)
        if vended.tier == "minted":
            return "minted", vended.token.access_token
        return ("stale", None) if vended.tier == "stale" else ("fresh", None)

    def _vend_once(self, key: str, request: VendRequest, deadline: Deadline) -> Vended:
        need = self._need(request)
        hit = self._memory_hit(key, need, request.rejected)
        if hit is not None:
            return hit
        # One slow path per key per container; the others wait here, but never past their deadline, and
        # long enough before it that a waiter given up on still has time to read the fleet's token
        # (a lock that comes with 0.01 s left is too late for anything).
        wait = max(deadline.remaining() - 2 * MIN_WORK_SECONDS, 0.0)
        with self._locks.hold(key, wait) as acquired:
            if not acquired:
                return self._after_lock_timeout(key, need, request.rejected)
            hit = self._memory_hit(key, need, request.rejected)
            if hit is not None:
                return hit
            if deadline.remaining() < MIN_WORK_SECONDS:
                raise UpstreamUnavailable("too little time left in this invocation to reach the cache or AIC")
            if request.rejected is not None:
                return self._retirement.retire(key, request, need, deadline)
            return self._slow.serve(key, request, need, deadline)

    def _after_lock_timeout(self, key: str, need: float, rejected: str | None) -> Vended:
        """Another request of this container held the key's slow path too long (it may need more validity
        than is cached, from an AIC that is down). A token of the fleet's that serves this request still
        does, unless it is the one this caller reports."""
        entry = self.context.read_table(key)
        token = entry.token if entry is not None else None
        if (
            token is not None
            and token.seconds_left(self.context.clocks.wall()) >= need
            and fingerprint(token.access_token) != rejected
        ):
            self.context.count("StaleServed")
            return Vended(token, "stale")
        raise UpstreamUnavailable(
            "another request of this execution environment is getting this token; it did not finish in time"
        )

    def _memory_hit(self, key: str, need: float, rejected: str | None = None) -> Vended | None:
        hit = self._memory.get_checked(key, self.context.clocks.wall())
        if hit is not None and rejected is not None and fingerprint(hit.access_token) == rejected:
            return None  # the caller reports this very token: never hand it back
        if hit is not None and hit.seconds_left(self.context.clocks.wall()) >= self.context.fresh(hit, need):
            self.context.count("MemoryHits")
            return Vended(hit, "memory")
        return None
