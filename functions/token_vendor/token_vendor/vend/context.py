"""What every collaborator of the vendor shares: ``VendContext`` (settings, clocks, metrics, the memory
cache, the table and the small rules they all use: how fresh a token must be, what a table hit is, never
less validity than asked), ``CacheHealth`` (how table trouble is told), and the shapes that pass between
the collaborators (``Vended``, ``Clocks``, ``Pending``).

The vendor is composed, not inherited; each collaborator takes what it uses in its constructor, and
``wiring.compose_vendor`` is the one place that builds them::

    CacheHealth(settings, metrics)            TokenTable(..., on_misconfigured=health.misconfigured)
    VendContext(settings, table, memory, metrics, clocks, health)
    Minter(context, key_source, endpoint, new_jti)           minting: key, assertion, exchange, rejections
    FleetLease(context, minter, lease_seconds)               fleet_lease: take, renew, wait, serve the item
    SlowPath(context, minter, lease)                         vending: memory miss -> rejections, table, lease
    Retirement(context, minter, lease, slow_path=...)        retirement: a caller's report
    TokenVendor(context, authorizer, slow_path, retirement, minter, locks)    vending: the facade
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from token_vendor.kernel.cached_token import CachedToken, Vended
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import (
    CacheUnavailable,
    InvalidRequest,
)
from token_vendor.kernel.settings import Settings
from token_vendor.kernel.vend_request import VendRequest
from token_vendor.vend.memory_cache import MemoryCache

if TYPE_CHECKING:  # the table is below the lease, which is below this module
    from token_vendor.adapters.aws.table_item import Retired, TableEntry
    from token_vendor.adapters.aws.token_table import TokenTable

logger = logging.getLogger("token_vendor").getChild(__name__)

# The lease's own constants (length, margin, polling, backoff) live with its rule in fleet_lease.
NEGATIVE_CACHE_SECONDS = 60.0
# Less time than this left in the invocation: fail fast instead of starting a network call (a DynamoDB
# brownout can make each call take seconds).
MIN_WORK_SECONDS = 0.2
# While AIC refuses the key, the secret is re-read at most this often, so a rotation shows at once.
KEY_RECHECK_SECONDS = 10.0
ROTATION_CODES = frozenset({"invalid_client", "invalid_grant"})
MAX_LOCAL_RETIREMENTS = 256
RECORD_EVERY_SECONDS = 300.0  # "vended recently": at most one write per container per scope set per 5 min
SCHEDULE_CALLER = "scheduled-refresh"


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> None: ...


class NoMetrics:
    def add_metric(self, name: str, unit: str, value: float) -> None:
        return None


@dataclass
class Clocks:
    """``wall`` times the caches (tests move it); ``signing`` stamps assertions and stays real, because
    AIC checks ``iat``/``exp`` against its own clock."""

    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    signing: Callable[[], float] = time.time


@dataclass
class Pending:
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


class CacheHealth:
    """How table trouble is told: a blip is a warning and a metric; a table or KMS key that cannot work
    (missing, denied, disabled) is an operator's problem, not a blip: ERROR once per execution environment,
    and a metric on every occurrence. The table's codec is told through ``misconfigured`` (a constructor
    argument of ``TokenTable``), the vend path through ``trouble``."""

    def __init__(self, settings: Settings, metrics: MetricsSink) -> None:
        self._settings = settings
        self._metrics = metrics
        self._logged = False

    def trouble(self, exc: CacheUnavailable) -> None:
        if exc.misconfigured:
            self.misconfigured(str(exc))
            return
        logger.warning("token table unavailable; minting without it", extra={"reason": str(exc)})
        self._metrics.add_metric("CacheUnavailable", "Count", 1)

    def misconfigured(self, reason: str) -> None:
        self._metrics.add_metric("CacheMisconfigured", "Count", 1)
        if not self._logged:
            self._logged = True
            logger.error(
                "token cache is misconfigured; every container mints on its own until it is fixed",
                extra={
                    "table": self._settings.table_name,
                    "cache_key_id": self._settings.cache_key_id,
                    "reason": reason,
                },
            )


class VendContext:
    """What every collaborator of one execution environment's vendor shares: settings, clocks, metrics,
    the memory cache, the table and the small rules they all use (how fresh a token must be, what a table
    hit is, never less validity than asked). ``clocks`` and ``metrics`` are read on every use, so a test
    or the bench may swap them on a built vendor (``vendor.context``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        table: TokenTable,
        memory: MemoryCache,
        metrics: MetricsSink,
        clocks: Clocks,
        health: CacheHealth,
    ) -> None:
        self.settings = settings
        self.table = table
        self.memory = memory
        self.metrics = metrics
        self.clocks = clocks
        self.health = health
        # The cache identifies the account without reading the secret, so a table hit needs no key.
        self.account_ref = settings.service_account_id or settings.secret_id or ""
        self.recorded: dict[str, float] = {}  # when this container last told the table a set is in use

    def fresh(self, token: CachedToken | None, need: float) -> float:
        """Seconds a token must have left to be served without a refresh. A token AIC issued for less
        than twice the refresh-ahead window is refreshed at half its life, not on every call."""
        ahead = float(self.settings.refresh_ahead_seconds)
        if token is not None and token.lifetime > 0:
            ahead = min(ahead, token.lifetime / 2)
        return max(need, ahead)

    def refuse_if_short(self, token: CachedToken | None, need: float) -> None:
        """Never hand out less validity than asked; and while AIC's last token for this scope set lives,
        do not mint again for a need its lifetime cannot meet."""
        if token is None or token.lifetime <= 0 or token.lifetime >= need:
            return
        if token.seconds_left(self.clocks.wall()) <= 0:
            return
        self.count("ShortLifetimeRefused")
        raise InvalidRequest(
            f"minValiditySeconds asks for {int(need)} s, but AIC issues tokens for this scope set that "
            f"live {int(token.lifetime)} s; ask for at most {int(token.lifetime)}"
        )

    def read_table(self, key: str) -> TableEntry | None:
        try:
            return self.table.read(key)
        except CacheUnavailable as exc:
            self.health.trouble(exc)
            return None

    def note_cache_trouble(self, exc: CacheUnavailable) -> None:
        self.health.trouble(exc)

    def table_hit(self, key: str, entry: TableEntry, at_least: float) -> Vended | None:
        if entry.token is None or entry.token.seconds_left(self.clocks.wall()) < at_least:
            return None
        now = self.clocks.wall()
        self.memory.put(key, entry.token, now)
        if entry.last_vended is not None and entry.last_vended > self.recorded.get(key, 0.0):
            # Another container recorded a use lately: this one need not write until that is 5 minutes old.
            self.recorded[key] = min(entry.last_vended, now)
        self.count("TableHits")
        return Vended(entry.token, "table")

    def count(self, name: str) -> None:
        self.metrics.add_metric(name, "Count", 1)

    def count_upstream_error(self, code: str) -> None:
        self.metrics.add_metric(f"UpstreamErrors_{code}", "Count", 1)


def fresher(a: CachedToken | None, b: CachedToken | None) -> CachedToken | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.expires_at >= b.expires_at else b
