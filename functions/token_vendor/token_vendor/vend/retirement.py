"""Retirement (CONTRACT section 5): a caller reports a token AIC refused.

Rules: the report names the token by its fingerprint; if it is the stored token, it is retired fleet-wide
and one replacement is minted (single flight through a dedicated lease condition), make-before-break: the
reported token stays in service for others until its replacement is stored, and reporters never get it
back; within MIN_REFRESH_INTERVAL_SECONDS of the last retirement the current token is served (rate limit),
if it has the validity asked for; with the table unusable, the rate limit holds per execution environment.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace

from token_vendor.adapters.aws.item_format import LEASE_MARGIN_SECONDS
from token_vendor.adapters.aws.token_table import (
    CacheUnavailable,
    Retired,
    TableEntry,
)
from token_vendor.kernel.cached_token import CachedToken, Vended, fingerprint
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import (
    UpstreamRejected,
    UpstreamUnavailable,
)
from token_vendor.kernel.vend_request import VendRequest
from token_vendor.vend.context import MAX_LOCAL_RETIREMENTS, MIN_WORK_SECONDS, Pending, VendContext
from token_vendor.vend.fleet_lease import (
    POLL_FIRST,
    POLL_MAX,
    FleetLease,
    exchange_deadline,
)
from token_vendor.vend.minting import Minter

logger = logging.getLogger("token_vendor").getChild(__name__)


# The vend path's slow path (``vending.SlowPath.serve``): a reporter whose token is already replaced is
# answered through it.
SlowPathCall = Callable[[str, VendRequest, float, Deadline], Vended]


class Retirement:
    """A reported token retired fleet-wide, one replacement minted."""

    def __init__(
        self, context: VendContext, minter: Minter, lease: FleetLease, *, slow_path: SlowPathCall
    ) -> None:
        self._ctx = context
        self._minter = minter
        self._lease = lease
        self._slow_path = slow_path
        self._local_retirements: dict[str, float] = {}  # when the table is unusable (CONTRACT 8)

    # -- retirement: a caller reports a token AIC refused (CONTRACT section 5) ------------------------
    def retire(self, key: str, request: VendRequest, need: float, deadline: Deadline) -> Vended:
        """Retire the reported token fleet-wide and mint one replacement (single flight, rate-limited).

        Make-before-break: the reported token stays in the table for everyone else until its replacement
        is stored; the reporters wait for that replacement and never get the reported token back.
        """
        rejected = request.rejected or ""
        interval = float(self._ctx.settings.min_refresh_interval_seconds)
        in_memory = self._ctx.memory.get(key)
        entry = self._ctx.read_table(key)
        if entry is None:  # shared cache down: this container replaces its own copy, rate-limited here
            return self._retire_unshared(key, request, need, deadline, in_memory, interval)
        if in_memory is not None and fingerprint(in_memory.access_token) == rejected:
            self._ctx.memory.drop(key)
        delay = POLL_FIRST
        refused = 0
        while True:
            answer = self._answer_without_retiring(key, request, need, deadline, entry)
            if answer is not None:
                return answer
            holder = secrets.token_hex(16)
            lease = min(self._lease.lease_seconds, max(deadline.remaining(), 0.1))
            # The lease runs from before the request leaves (a slow grant shortens the work, not the lease).
            lease_ends = Deadline.after(lease - LEASE_MARGIN_SECONDS, deadline.clock)
            try:
                current = self._ctx.table.try_retire(
                    key, holder, lease, rejected, interval, key_version=self._minter.key_version()
                )
            except CacheUnavailable as exc:
                self._ctx.note_cache_trouble(exc)
                raise UpstreamUnavailable("the token cache is unavailable; report the token again") from exc
            if current.granted:
                return self._replace_retired(key, request, need, deadline, holder, lease_ends)
            if current.lease_held(
                self._ctx.clocks.wall()
            ):  # another holder is on it: wait for its replacement
                self._ctx.count("LeaseWaits")
                if delay >= deadline.remaining():
                    raise UpstreamUnavailable(
                        "the reported token is being replaced; it did not finish in time"
                    )
                self._ctx.clocks.sleep(delay)
                delay = min(delay * 1.6, POLL_MAX)
                if deadline.remaining() < MIN_WORK_SECONDS:
                    raise UpstreamUnavailable(
                        "the reported token is being replaced; it did not finish in time"
                    )
                refreshed = self._ctx.read_table(key)
                if refreshed is None:
                    raise UpstreamUnavailable("the token cache is unavailable; report the token again")
                entry = refreshed
            else:
                refused += 1
                if refused > 2:  # the item refuses the retirement for a reason no read explains (altered)
                    raise UpstreamUnavailable("the reported token could not be retired now; report it again")
                entry = current

    def _answer_without_retiring(
        self, key: str, request: VendRequest, need: float, deadline: Deadline, entry: TableEntry
    ) -> Vended | None:
        """What a reporter is answered when the item says no retirement is due: the token already replaced,
        the rate limit (the stored token, if it serves), or AIC's remembered rejection."""
        stored = entry.token
        if stored is None or fingerprint(stored.access_token) != request.rejected:
            # Already replaced (or never ours to retire): the current token, through the normal path.
            return self._slow_path(key, replace(request, rejected=None), need, deadline)
        now = self._ctx.clocks.wall()
        if (
            entry.retired is not None
            and now - entry.retired.at < self._ctx.settings.min_refresh_interval_seconds
        ):
            if stored.seconds_left(now) < need:  # rate-limited, but it cannot serve: refresh it
                return self._slow_path(key, replace(request, rejected=None), need, deadline)
            self._ctx.count("RetireRateLimited")
            self._ctx.memory.put(key, stored, now)
            return Vended(stored, "table", retire_rate_limited=True)
        rejection = entry.rejection if entry.rejection is not None else self._minter.remembered(key)
        if rejection is not None and self._minter.holds(rejection):
            # AIC refused this scope set moments ago: a replacement would be refused too (otherwise each
            # report of a refused scope set costs AIC another rejection).
            return self._minter.serve_despite(rejection, Pending(key, request, need, deadline, None, "table"))
        return None

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
        now = self._ctx.clocks.wall()
        last = self._local_retirements.get(key)
        if (
            last is not None
            and 0 <= now - last < interval
            and in_memory is not None
            and in_memory.seconds_left(now) >= need
        ):
            self._ctx.count("RetireRateLimited")
            return Vended(in_memory, "memory", retire_rate_limited=True)
        if in_memory is not None and fingerprint(in_memory.access_token) == rejected:
            self._ctx.memory.drop(key)
            in_memory = None
        vended = self._lease.mint_unshared(Pending(key, request, need, deadline, None, "memory"))
        self._local_retirements[key] = now
        while len(self._local_retirements) > MAX_LOCAL_RETIREMENTS:
            self._local_retirements.pop(next(iter(self._local_retirements)))
        self._ctx.count("TokenRetired")
        return replace(vended, retired=rejected)

    def _replace_retired(
        self,
        key: str,
        request: VendRequest,
        need: float,
        deadline: Deadline,
        holder: str,
        lease_ends: Deadline,
    ) -> Vended:
        rejected = request.rejected or ""
        pending = Pending(key, request, need, deadline, None, "table")  # nothing stale for a reporter
        work = exchange_deadline(deadline).earliest(lease_ends)
        try:
            renew = self._lease.renewal(key, holder, deadline, work)
            token, jti = self._minter.mint(request, work, None, renew)
        except UpstreamRejected as exc:
            self._ctx.table.release(key, holder, self._minter.remember_rejection(key, exc))
            return self._minter.stale_or_raise(
                pending, exc
            )  # raises: the reported token is never served back
        except UpstreamUnavailable as exc:
            self._ctx.table.release(key, holder)
            return self._minter.stale_or_raise(pending, exc)
        except BaseException:
            self._ctx.table.release(key, holder)
            raise
        retired = Retired(rejected, self._ctx.clocks.wall())
        try:
            self._ctx.table.store(key, token, holder, retired, last_vended=self._ctx.clocks.wall())
        except CacheUnavailable as exc:
            self._ctx.note_cache_trouble(exc)
            self._ctx.table.release(key, holder)
        self._ctx.memory.put(key, token, self._ctx.clocks.wall())
        self._ctx.count("TokenRetired")
        logger.info(
            "token retired on a caller's report", extra={"retired": rejected, "caller": request.caller}
        )
        self._ctx.refuse_if_short(token, need)
        return Vended(token, "minted", jti, retired=rejected)
