"""The scheduled refresh (CONTRACT section 5, ``{"refresh": "due"}``): callers in steady state never wait
on AIC.

Rule: every scope set vended within ``KEEP_WARM_SECONDS`` whose token is inside its refresh window, or will
be before the next run (``LOOKAHEAD_SECONDS``), is refreshed through the same lease as a caller's refresh:
one exchange per scope set fleet-wide, one attempt, the fleet's backoff and remembered rejections
respected. A run refreshes at most ``MAX_REFRESHES_PER_RUN`` scope sets and stops before its deadline, so
an outage costs AIC at most that many attempts a minute. It answers counts and fingerprints, never a token.

"Vended recently" is the item's ``last_vended``, written by ``TokenVendor`` at most once per execution
environment per scope set per ``RECORD_EVERY_SECONDS`` (docs/decisions.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from token_vendor.cached_token import cache_key, fingerprint
from token_vendor.deadline import Deadline
from token_vendor.errors import InvalidScope, TokenVendorError
from token_vendor.scopes import Scopes, normalise_scopes
from token_vendor.token_table import CacheUnavailable, RecentScopeSet

logger = logging.getLogger("token_vendor").getChild(__name__)

LOOKAHEAD_SECONDS = 60.0  # the schedule runs every minute: refresh what would fall due before the next run
MAX_REFRESHES_PER_RUN = 25
MIN_RUN_SECONDS = 1.0  # less than this left: stop, the next run carries on


class Refreshing(Protocol):
    """What the refresher needs of the vendor (``TokenVendor``)."""

    def refresh_ahead(
        self, scopes: Scopes, lookahead: float, deadline: Deadline
    ) -> tuple[str, str | None]: ...

    def fresh_seconds(self, lifetime: float) -> float: ...


class RecentSource(Protocol):
    def recently_vended(self, since: float) -> list[RecentScopeSet]: ...


@dataclass
class RefreshSummary:
    considered: int = 0
    refreshed: list[str] = field(default_factory=list)  # fingerprints of the new tokens
    not_due: int = 0
    failed: int = 0
    skipped: int = 0  # left for the next run (the per-run bound or the deadline)
    unreadable: int = 0  # items whose scope does not spell their key (altered): never refreshed

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

    def run(self, deadline: Deadline) -> RefreshSummary:
        summary = RefreshSummary()
        if self._keep_warm <= 0:
            return summary
        now = self._clock()
        try:
            recent = self._table.recently_vended(now - self._keep_warm)
        except CacheUnavailable as exc:
            logger.warning("scheduled refresh could not read the token table", extra={"reason": str(exc)})
            self._count("ScheduledRefreshFailures")
            summary.failed += 1
            return summary
        # The soonest to expire first: if the run is cut short, what matters most was done.
        for item in sorted(recent, key=lambda r: r.expires_at or 0.0):
            summary.considered += 1
            scopes = self._scopes_of(item)
            if scopes is None:
                summary.unreadable += 1
                continue
            left = (item.expires_at or 0.0) - self._clock()
            if left >= self._vendor.fresh_seconds(item.lifetime) + self._lookahead:
                summary.not_due += 1
                continue
            if len(summary.refreshed) + summary.failed >= MAX_REFRESHES_PER_RUN or (
                deadline.remaining() < MIN_RUN_SECONDS
            ):
                summary.skipped += 1
                continue
            try:
                outcome, token = self._vendor.refresh_ahead(scopes, self._lookahead, deadline)
            except TokenVendorError as exc:
                logger.warning(
                    "scheduled refresh failed", extra={"scopes": " ".join(scopes), "error": exc.name}
                )
                outcome, token = "failed", None
            if outcome == "minted" and token is not None:
                summary.refreshed.append(fingerprint(token))
                self._count("ScheduledRefreshes")
            elif outcome == "fresh":
                summary.not_due += 1
            else:
                summary.failed += 1
                self._count("ScheduledRefreshFailures")
        return summary

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
