"""What every part of the vendor shares: the state of one execution environment's vendor, the shapes that
pass between the parts (``Vended``, ``Clocks``, ``Pending``) and the small rules they all use (how fresh a
token must be, what a table hit is, never less validity than asked).

The vendor is read in rooms (issue 24), each with its rule in its docstring, layered bottom up:
``minting`` (key, assertion, exchange, rejection memory) < ``fleet_lease`` (take, renew, wait, serve from
the item) < ``retirement`` (a caller's report) < ``vending`` (the vend path; ``TokenVendor``, the facade).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from token_vendor.authorization import Authorizer
from token_vendor.cached_token import CachedToken
from token_vendor.coordination import KeyLocks, RememberedRejections
from token_vendor.deadline import Deadline
from token_vendor.errors import (
    InvalidRequest,
)
from token_vendor.memory_cache import MemoryCache
from token_vendor.settings import Settings
from token_vendor.signer import Signer
from token_vendor.token_endpoint import TokenEndpoint
from token_vendor.token_table import (
    CacheMisconfigured,
    CacheUnavailable,
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
ROTATION_CODES = frozenset({"invalid_client", "invalid_grant"})
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


class VendorState:
    """The state of one execution environment's vendor, and the helpers every room uses."""

    def __init__(
        self,
        settings: Settings,
        *,
        key_source: Signer,
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
        self._account_ref = settings.service_account_id or settings.secret_id or ""
        self._rejections = RememberedRejections(self._clocks.wall)
        self._locks = KeyLocks()
        self._local_retirements: dict[str, float] = {}  # when the table is unusable (CONTRACT 8)
        self._recorded: dict[str, float] = {}  # when this container last told the table a set is in use
        self._misconfiguration_logged = False
        table.on_misconfigured = self._note_misconfigured

    def _fresh(self, token: CachedToken | None, need: float) -> float:
        """Seconds a token must have left to be served without a refresh. A token AIC issued for less
        than twice the refresh-ahead window is refreshed at half its life, not on every call."""
        ahead = float(self.settings.refresh_ahead_seconds)
        if token is not None and token.lifetime > 0:
            ahead = min(ahead, token.lifetime / 2)
        return max(need, ahead)

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
        now = self._clocks.wall()
        self._memory.put(key, entry.token, now)
        if entry.last_vended is not None and entry.last_vended > self._recorded.get(key, 0.0):
            # Another container recorded a use lately: this one need not write until that is 5 minutes old.
            self._recorded[key] = min(entry.last_vended, now)
        self._count("TableHits")
        return Vended(entry.token, "table")

    def _count(self, name: str) -> None:
        self._metrics.add_metric(name, "Count", 1)

    def _count_upstream_error(self, code: str) -> None:
        self._metrics.add_metric(f"UpstreamErrors_{code}", "Count", 1)

    def _slow_path(
        self, key: str, request: VendRequest, need: float, deadline: Deadline, lookahead: float = 0.0
    ) -> Vended:
        """The vend path's slow path (``vending.TokenVendor``); retirement falls back to it."""
        raise NotImplementedError


def fresher(a: CachedToken | None, b: CachedToken | None) -> CachedToken | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.expires_at >= b.expires_at else b
