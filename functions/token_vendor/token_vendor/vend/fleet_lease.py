"""The fleet lease (DESIGN step 4; token_table's timeline): one exchange per scope set per refresh cycle.

This module owns the lease's loop (``FleetLease``: take, renew, wait, serve the item) and its pace (length,
polling, the refresh's backoff). What the lease is on the item (the clock tolerance, the holder's margin, the
conditions it is written under, when it is held) is the item format's (``adapters/aws/item_format.py``),
which the table and ``aic-token cache`` read as well.

Rules: only the holder of the lease mints, and never past its lease (its work ends by the earlier of the
deadline and the lease, and it renews the lease, fenced, before each retry); a refresh while the cached
token still serves is one attempt and, on failure, a fleet-wide backoff; a caller that did not get the
lease is served what the item offers (a stored token, a remembered rejection, the cached token while
someone refreshes) or waits and tries again; table trouble degrades to minting without the shared cache.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from token_vendor.adapters.aws.item_format import LEASE_MARGIN_SECONDS
from token_vendor.kernel.cached_token import Vended
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import (
    CacheUnavailable,
    InvalidRequest,
    UpstreamRejected,
    UpstreamUnavailable,
)
from token_vendor.vend.context import MIN_WORK_SECONDS, SCHEDULE_CALLER, Pending, VendContext

if TYPE_CHECKING:  # the table reads this module's rules: only its shapes are named here
    from token_vendor.adapters.aws.table_item import TableEntry
    from token_vendor.vend.minting import Minter

logger = logging.getLogger("token_vendor").getChild(__name__)

# The lease is short so that a dead holder costs little; a live holder renews it before each retry and
# never works past it (CONTRACT section 8: "a lease holder never works past its lease").
LEASE_SECONDS = 10.0
POLL_FIRST = 0.05
POLL_MAX = 0.5
# While another container may be minting, a failed table call is retried this many times before this
# container gives up on the shared cache and mints on its own (a second exchange, but never an error).
MAX_TABLE_FAILURES = 3
# A refresh while the cached token still serves: one attempt, bounded, then a fleet-wide backoff.
REFRESH_ATTEMPT_SECONDS = 2.0
BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 60.0


class FleetLease:
    """Take the lease and mint, or serve what another holder stores."""

    def __init__(self, context: VendContext, minter: Minter, *, lease_seconds: float) -> None:
        self._ctx = context
        self._minter = minter
        self.lease_seconds = lease_seconds

    # -- the lease (see token_table's timeline) ----------------------------------------------------
    def lease_or_wait(self, pending: Pending) -> Vended:
        """Take the lease and mint, or serve what another holder stores.

        Steps: try the lease; won -> mint as holder; lost -> serve what the item now offers (a token
        stored by the last holder, a remembered rejection, or the cached token while someone refreshes);
        else wait, re-read and try again until the deadline. Table trouble degrades to minting unshared.
        """
        delay = POLL_FIRST
        failures = 0  # consecutive table failures while others may be minting
        while True:
            holder = secrets.token_hex(16)  # the fencing value for this lease
            lease = min(self.lease_seconds, max(pending.deadline.remaining(), 0.1))
            # The lease runs from before the request leaves: a slow grant shortens the work, never the lease.
            lease_ends = Deadline.after(lease - LEASE_MARGIN_SECONDS, pending.deadline.clock)
            refresh = pending.cached_serves(self._ctx.clocks.wall())
            fresh = (
                None
                if pending.unreadable
                else self._ctx.fresh(pending.cached, pending.need) + pending.lookahead
            )
            try:
                current = self._ctx.table.try_lease(
                    pending.key, holder, lease, fresh, key_version=self._minter.key_version(), refresh=refresh
                )
            except CacheUnavailable as exc:
                self._ctx.note_cache_trouble(exc)
                failures += 1
                if failures >= MAX_TABLE_FAILURES or delay >= pending.deadline.remaining():
                    return self.mint_unshared(pending)
                self._ctx.clocks.sleep(delay)  # a blip: one more look before minting a second token
                continue
            failures = 0
            if current.granted:
                return self._as_lease_winner(pending, current, holder, lease_ends, refresh)
            served = self._serve_from_item(pending, current)
            if served is not None:
                return served
            self._ctx.count("LeaseWaits")
            if delay >= pending.deadline.remaining():
                raise UpstreamUnavailable(
                    "another request is minting this token and it did not finish in time"
                )
            self._ctx.clocks.sleep(delay)
            delay = min(delay * 1.6, POLL_MAX)
            if pending.deadline.remaining() < MIN_WORK_SECONDS:
                raise UpstreamUnavailable(
                    "another request is minting this token and it did not finish in time"
                )
            entry = self._ctx.read_table(pending.key)
            if entry is None:
                failures += 1
                if failures >= MAX_TABLE_FAILURES:
                    return self.mint_unshared(pending)
                continue
            failures = 0
            served = self._serve_from_item(pending, entry)
            if served is not None:
                return served

    def _as_lease_winner(
        self, pending: Pending, current: TableEntry, holder: str, lease_ends: Deadline, refresh: bool
    ) -> Vended:
        """The lease is ours: serve what the item already offers, refuse a need AIC cannot meet, or mint."""
        if current.token is not None and not current.unreadable:
            # The lease's condition judged the stored token by the refresh-ahead window; a token AIC
            # issues for less than twice that is fresh for half its life (else a caller that had read
            # nothing re-mints a 300 s token stored a moment ago).
            fresh = self._ctx.fresh(current.token, pending.need) + pending.lookahead
            hit = self._ctx.table_hit(pending.key, current, fresh)
            if hit is not None:
                self._ctx.table.release(pending.key, holder)
                return hit
        try:  # AIC's last token lives and is shorter than this need: minting again gives the same
            self._ctx.refuse_if_short(current.token, pending.need)
        except InvalidRequest:
            self._ctx.table.release(pending.key, holder)
            raise
        # The backoff doubles from the item as the lease found it, not from an earlier read; and the last
        # retirement is carried from it too, or the store would erase one made since that read (and the
        # fleet's rate limit with it).
        pending.backoff = current.refresh_backoff
        if current.retired is not None:
            pending.retired = current.retired
        return self._mint_as_holder(pending, holder, lease_ends, refresh)

    def _serve_from_item(self, pending: Pending, entry: TableEntry) -> Vended | None:
        """What a caller that did not get the lease can be served from the item as it stands, if anything."""
        stored = self._ctx.table_hit(pending.key, entry, pending.need)
        if stored is not None:
            return stored
        self._ctx.refuse_if_short(entry.token, pending.need)
        if entry.rejection is not None and self._minter.holds(entry.rejection):
            return self._minter.serve_despite(entry.rejection, pending)
        if pending.cached_serves(self._ctx.clocks.wall()):
            # Someone else is refreshing (or a refresh backoff runs): the token we have still serves.
            self._ctx.count("RefreshInProgressServed")
            return Vended(pending.cached, pending.tier)  # type: ignore[arg-type]
        pending.unreadable = entry.unreadable
        pending.backoff = entry.refresh_backoff
        pending.retired = entry.retired
        return None

    def _mint_as_holder(self, pending: Pending, holder: str, lease_ends: Deadline, refresh: bool) -> Vended:
        clock = pending.deadline.clock
        # The exchange leaves time to store what it mints: a token minted and not stored costs the fleet
        # another exchange once the lease lapses.
        work = exchange_deadline(pending.deadline).earliest(lease_ends)
        attempts = None
        renew: Callable[[], Deadline | None] | None = None
        if refresh:  # the cached token still serves: one short attempt, then the fleet backs off
            work = work.earliest(Deadline.after(REFRESH_ATTEMPT_SECONDS, clock))
            attempts = 1
        else:
            renew = self.renewal(pending.key, holder, pending.deadline, work)

        try:
            token, jti = self._minter.mint(pending.request, work, attempts, renew)
        except UpstreamRejected as exc:
            rejection = self._minter.remember_rejection(pending.key, exc)
            self._ctx.table.release(pending.key, holder, rejection)
            return self._minter.stale_or_raise(pending, exc)
        except UpstreamUnavailable as exc:
            backoff = None
            if refresh:
                previous = pending.backoff
                backoff = BACKOFF_FIRST_SECONDS if not previous else min(BACKOFF_MAX_SECONDS, previous * 2)
            self._ctx.table.release(pending.key, holder, backoff=backoff)
            return self._minter.stale_or_raise(pending, exc)
        except BaseException:
            self._ctx.table.release(pending.key, holder)
            raise
        self._ctx.memory.put(pending.key, token, self._ctx.clocks.wall())
        try:
            # A caller's vend is a use; the scheduled refresh's own mint is not (an idle set must expire).
            by_caller = pending.request.caller != SCHEDULE_CALLER
            now = self._ctx.clocks.wall()
            used = now if by_caller else pending.last_vended
            if (
                self._ctx.table.store(pending.key, token, holder, pending.retired, last_vended=used)
                and by_caller
            ):
                self._ctx.recorded[pending.key] = now  # the store recorded the use: no separate write
        except CacheUnavailable as exc:
            logger.warning("could not store the token in the table", extra={"reason": str(exc)})
            self._ctx.note_cache_trouble(exc)
            self._ctx.table.release(pending.key, holder)
        self._ctx.refuse_if_short(token, pending.need)
        return Vended(token, "minted", jti)

    def renewal(
        self, key: str, holder: str, deadline: Deadline, work: Deadline
    ) -> Callable[[], Deadline | None]:
        """What a holder calls before a retry: extend the lease (fenced), or stop if another container
        took it. Every holder that retries renews, the retirement's replacement mint too (else its third
        attempt can run past its lease while another holder takes it over)."""
        clock = deadline.clock

        def renew() -> Deadline | None:
            # The renewed lease counts from before the request left (in a brownout, a renewal that takes
            # 1 s would let the holder work a second past its lease).
            renewed_ends = Deadline.after(self.lease_seconds - LEASE_MARGIN_SECONDS, clock)
            try:
                if not self._ctx.table.renew(key, holder, self.lease_seconds):
                    return None
            except CacheUnavailable as exc:
                self._ctx.note_cache_trouble(exc)
                return work  # cannot renew: keep to the lease we have
            return exchange_deadline(deadline).earliest(renewed_ends)

        return renew

    def mint_unshared(self, pending: Pending) -> Vended:
        local = self._minter.remembered(pending.key)
        if local is not None and self._minter.holds(local):
            # Without the table, this environment's own memory of AIC's rejection still holds the attempt
            # back (CONTRACT 8.5): a report during a DynamoDB fault must not ask AIC again moments after
            # another request of the same environment was refused.
            return self._minter.serve_despite(local, pending)
        if pending.deadline.remaining() < MIN_WORK_SECONDS:
            # The table call failed for want of time (none was sent): that says nothing of the table, and
            # an exchange now would be a second one for the fleet, whose holder may still store its token
            # (a waiter frozen mid-poll can wake with 0.05 s left).
            too_late = UpstreamUnavailable(
                "too little time left in this invocation to reach the cache or AIC"
            )
            return self._minter.stale_or_raise(pending, too_late)
        attempts = None
        work = pending.deadline
        if pending.cached_serves(self._ctx.clocks.wall()):
            attempts = 1
            work = work.earliest(Deadline.after(REFRESH_ATTEMPT_SECONDS, work.clock))
        try:
            token, jti = self._minter.mint(pending.request, work, attempts, None)
        except UpstreamRejected as exc:
            self._minter.remember_rejection(pending.key, exc)
            return self._minter.stale_or_raise(pending, exc)
        except UpstreamUnavailable as exc:
            return self._minter.stale_or_raise(pending, exc)
        self._ctx.memory.put(pending.key, token, self._ctx.clocks.wall())
        self._ctx.refuse_if_short(token, pending.need)
        return Vended(token, "minted", jti)


def exchange_deadline(deadline: Deadline) -> Deadline:
    """The deadline of a lease holder's exchange: the vend's, less the time to store the token."""
    return Deadline(deadline.at - MIN_WORK_SECONDS, deadline.clock)
