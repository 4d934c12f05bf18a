"""The scheduled refresh (CONTRACT section 5, ``{"refresh": "due"}``): callers in steady state never wait
on AIC.

Rule: every scope set vended within ``KEEP_WARM_SECONDS`` whose token is inside its refresh window, or will
be before the next run (``LOOKAHEAD_SECONDS``), is refreshed through the same lease as a caller's refresh:
one exchange per scope set fleet-wide, one attempt, the fleet's backoff and remembered rejections
respected. It answers counts and fingerprints, never a token.

Bounds (issue 30), whatever the table holds and however many runs are sent:
- the scan reads at most ``MAX_SCAN_PAGES_PER_RUN`` pages of ``use_records.SCAN_PAGE_ITEMS`` items, in at
  most ``SCAN_SHARE`` of the run's time, every call inside the run's deadline budget (``bounded_client``); the
  next run in this execution environment carries on where this one stopped, so a large table is covered
  over successive runs;
- a run refreshes at most ``MAX_REFRESHES_PER_RUN`` scope sets, and the fleet at most
  ``MAX_REFRESHES_PER_MINUTE`` a minute (a counter item, ``use_records.take_refresh_slot``), so an outage
  costs AIC at most that many attempts a minute however many runs anyone sends;
- the run stops before its deadline (``MIN_RUN_SECONDS``) and answers a summary.

"Vended recently" is the item's ``last_vended``, written by ``TokenVendor`` at most once per execution
environment per scope set per ``RECORD_EVERY_SECONDS`` (docs/decisions.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from token_vendor.adapters.aws import bounded_client
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.adapters.aws.token_table import CacheUnavailable, RecentScopeSet
from token_vendor.adapters.aws.use_records import ScanSlice, refresh_counter_key
from token_vendor.kernel.cached_token import fingerprint
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import InvalidScope, TokenVendorError
from token_vendor.kernel.scopes import Scopes, normalise_scopes

logger = logging.getLogger("token_vendor").getChild(__name__)

LOOKAHEAD_SECONDS = 60.0  # the schedule runs every minute: refresh what would fall due before the next run
MAX_REFRESHES_PER_RUN = 25
MAX_REFRESHES_PER_MINUTE = 25  # fleet-wide: the schedule's one run a minute, whatever else is sent
MAX_SCAN_PAGES_PER_RUN = 10  # at most 1,000 items (and 10 MB) read per run
SCAN_SHARE = 0.5  # of the run's remaining time, at most, for the scan; the refreshes have the rest
MIN_RUN_SECONDS = 1.0  # less than this left: stop, the next run carries on


class Refreshing(Protocol):
    """What the refresher needs of the vendor (``TokenVendor``)."""

    def refresh_ahead(
        self, scopes: Scopes, lookahead: float, deadline: Deadline
    ) -> tuple[str, str | None]: ...

    def fresh_seconds(self, lifetime: float) -> float: ...


class RecentSource(Protocol):
    """What the refresher needs of the table (``TokenTable``, through ``use_records.UseRecords``)."""

    def recently_vended(
        self, since: float, deadline: Deadline, *, start: dict[str, Any] | None = None, pages: int = 10
    ) -> ScanSlice: ...

    def take_refresh_slot(self, key: str, limit: int) -> bool: ...


@dataclass
class RefreshSummary:
    considered: int = 0
    refreshed: list[str] = field(default_factory=list)  # fingerprints of the new tokens
    not_due: int = 0
    failed: int = 0
    skipped: int = 0  # left for the next run (the per-run or fleet bound, or the deadline)
    unreadable: int = 0  # items whose scope does not spell their key (altered): never refreshed
    pages: int = 0  # Scan pages read
    items_read: int = 0  # items those pages read (before the filter)
    complete: bool = False  # the scan reached the table's end (else the next run carries on)
    fleet_limited: int = 0  # due, but the fleet's refreshes for this minute were spent

    def as_result(self) -> dict[str, Any]:
        return {
            "refresh": "done",
            "considered": self.considered,
            "refreshed": len(self.refreshed),
            "fingerprints": self.refreshed,
            "notDue": self.not_due,
            "failed": self.failed,
            "deferred": self.skipped,
            "ignored": self.unreadable,
            "pagesRead": self.pages,
            "itemsRead": self.items_read,
            "scanComplete": self.complete,
            "fleetLimited": self.fleet_limited,
        }


class ScheduledRefresher:
    def __init__(
        self,
        vendor: Refreshing,
        table: RecentSource,
        *,
        tenant: str,
        account_ref: str,
        keep_warm_seconds: float,
        clock: Callable[[], float],
        metrics: Any,
        lookahead: float = LOOKAHEAD_SECONDS,
    ) -> None:
        self._vendor = vendor
        self._lookahead = lookahead  # the schedule's period: what falls due before the next run
        self._table = table
        self._tenant = tenant
        self._account_ref = account_ref
        self._keep_warm = keep_warm_seconds
        self._clock = clock
        self._metrics = metrics
        self._counter = refresh_counter_key(tenant, account_ref)
        self._resume_at: dict[str, Any] | None = None  # where the last run's scan stopped

    def run(self, deadline: Deadline) -> RefreshSummary:
        summary = RefreshSummary()
        if self._keep_warm <= 0:
            return summary
        found = self._scan(deadline, summary)
        if found is None:
            return summary
        with bounded_client.within(deadline):  # every AWS call of the run ends by its deadline
            # The soonest to expire first: if the run is cut short, what matters most was done.
            for item in sorted(found.found, key=lambda r: r.expires_at or 0.0):
                self._consider(item, deadline, summary)
        return summary

    def _scan(self, deadline: Deadline, summary: RefreshSummary) -> ScanSlice | None:
        """This run's slice of the table, from where the last run stopped, in SCAN_SHARE of its time."""
        scan_deadline = deadline.earliest(Deadline.after(deadline.remaining() * SCAN_SHARE, deadline.clock))
        try:
            with bounded_client.within(scan_deadline):
                found = self._table.recently_vended(
                    self._clock() - self._keep_warm,
                    scan_deadline,
                    start=self._resume_at,
                    pages=MAX_SCAN_PAGES_PER_RUN,
                )
        except CacheUnavailable as exc:
            logger.warning("scheduled refresh could not read the token table", extra={"reason": str(exc)})
            self._count("ScheduledRefreshFailures")
            summary.failed += 1
            return None
        self._resume_at = found.resume_at
        summary.pages, summary.items_read = found.pages, found.items_read
        summary.complete = found.resume_at is None
        return found

    def _consider(self, item: RecentScopeSet, deadline: Deadline, summary: RefreshSummary) -> None:
        summary.considered += 1
        scopes = self._scopes_of(item)
        if scopes is None:
            summary.unreadable += 1
            return
        left = (item.expires_at or 0.0) - self._clock()
        if left >= self._vendor.fresh_seconds(item.lifetime) + self._lookahead:
            summary.not_due += 1
            return
        if len(summary.refreshed) + summary.failed >= MAX_REFRESHES_PER_RUN or (
            deadline.remaining() < MIN_RUN_SECONDS
        ):
            summary.skipped += 1
            return
        if not self._slot():
            summary.skipped += 1
            summary.fleet_limited += 1
            return
        try:
            outcome, token = self._vendor.refresh_ahead(scopes, self._lookahead, deadline)
        except TokenVendorError as exc:
            logger.warning("scheduled refresh failed", extra={"scopes": " ".join(scopes), "error": exc.name})
            outcome, token = "failed", None
        if outcome == "minted" and token is not None:
            summary.refreshed.append(fingerprint(token))
            self._count("ScheduledRefreshes")
        elif outcome == "fresh":
            summary.not_due += 1
        else:
            summary.failed += 1
            self._count("ScheduledRefreshFailures")

    def _slot(self) -> bool:
        """One of the fleet's refreshes for this minute; none when the count cannot be read (the refresh
        would go through the same table)."""
        try:
            return self._table.take_refresh_slot(self._counter, MAX_REFRESHES_PER_MINUTE)
        except CacheUnavailable as exc:
            logger.warning("scheduled refresh could not count its refresh", extra={"reason": str(exc)})
            return False

    def _scopes_of(self, item: RecentScopeSet) -> Scopes | None:
        """The scope set, only if it spells the item's own key: a table writer cannot make the refresher
        mint for another key than the one it stores under."""
        try:
            scopes = normalise_scopes(item.scope)
        except InvalidScope:
            return None
        return scopes if cache_key(self._tenant, self._account_ref, scopes) == item.key else None

    def _count(self, name: str) -> None:
        self._metrics.add_metric(name, "Count", 1)
