"""``--weaken``: one rule of the protocol broken by a two-line change to the vendor (issue 24).

Each switch patches a constant or a method of the collaborator that owns the rule (``Minter``,
``VendContext``, ``TokenVendor``, ``TokenTable`` or a module; ``weakened`` refuses an attribute its owner
does not define itself), never an invariant and never the simulated table's verdict: the simulated
services and the invariants stay as they are, so a run that still passes under a switch is a rule nothing
checks. ``docs/decisions.md`` records which invariant fails first, at
which seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from token_vendor.adapters.aws import item_format, token_table
from token_vendor.adapters.aws.token_table import TokenTable
from token_vendor.kernel.deadline import Deadline
from token_vendor.vend import fleet_lease
from token_vendor.vend.context import VendContext
from token_vendor.vend.minting import Minter
from token_vendor.vend.vending import TokenVendor

ALWAYS = "(attribute_exists(pk) OR attribute_not_exists(pk))"


@dataclass(frozen=True)
class Weakening:
    rule: str  # the rule broken, as the README states it
    patches: Callable[[], list[tuple[Any, str, Any]]]  # (owner, attribute, replacement)
    vendor: Callable[[TokenVendor], None] = lambda vendor: None  # applied to each environment's vendor


def _memory_hit_short(self: Any, key: str, need: float, rejected: str | None = None) -> Any:
    return _ORIGINAL["memory_hit"](self, key, need - 2.0, rejected)  # off by 2 s


def _table_hit_short(self: Any, key: str, entry: Any, at_least: float) -> Any:
    return _ORIGINAL["table_hit"](self, key, entry, at_least - 2.0)  # off by 2 s


def _memory_hit_reporter(self: Any, key: str, need: float, rejected: str | None = None) -> Any:
    return _ORIGINAL["memory_hit"](self, key, need, None)  # the reported token is served back


def _always_raise(self: Any, pending: Any, exc: Exception) -> Any:
    raise exc  # a failed refresh is the caller's error, however long the cached token lives


def _remaining_plus_one(self: Deadline) -> float:
    left = self.at - self.clock()
    return left + 1.0 if left > 0 else 0.0  # the vendor believes it has a second more than it has


def _renew_without_writing(self: TokenTable, key: str, holder: str, seconds: float) -> bool:
    return True  # the holder carries on as if renewed; the table's lease still ends when it did


def _retire_breaking(self: TokenTable, key: str, holder: str, *args: Any, **kwargs: Any) -> Any:
    entry = _ORIGINAL["try_retire"](self, key, holder, *args, **kwargs)
    if entry.granted:  # break before make: the reported token leaves the table before its replacement
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": key}},
            UpdateExpression="REMOVE expires_at, #t, token_ct, token_nonce, token_key, fingerprint",
            ConditionExpression=item_format.FENCE,
            ExpressionAttributeNames={"#t": "token"},
            ExpressionAttributeValues={":h": {"S": holder}},
        )
    return entry


def _no_rate_limit(vendor: TokenVendor) -> None:
    vendor.context.settings = dataclasses.replace(vendor.settings, min_refresh_interval_seconds=0)


_ORIGINAL: dict[str, Any] = {
    "memory_hit": TokenVendor._memory_hit,
    "table_hit": VendContext.table_hit,
    "try_retire": TokenTable.try_retire,
}

WEAKENINGS: dict[str, Weakening] = {
    "fence": Weakening(
        "a token is stored only by the holder of the lease",
        lambda: [(item_format, "FENCE", f"(lease_holder = :h OR {ALWAYS})")],
    ),
    "release": Weakening(
        "a lease is given back only by its holder",
        lambda: [(item_format, "RELEASABLE", f"(lease_holder = :h OR {ALWAYS})")],
    ),
    "lease": Weakening(
        "only one holder of the lease at a time",
        lambda: [(item_format, "LEASE_FREE", f"({ALWAYS} OR :now = :far OR :num = :num)")],
    ),
    "rate-limit": Weakening(
        "a scope set is retired at most once per MIN_REFRESH_INTERVAL_SECONDS",
        lambda: [],
        _no_rate_limit,
    ),
    "stale": Weakening(
        "a failed refresh serves the cached token while it meets the caller's need",
        lambda: [(Minter, "stale_or_raise", _always_raise)],
    ),
    "backoff": Weakening(
        "a failed refresh backs the fleet off (5 s, doubling to 60 s)",
        lambda: [(fleet_lease, "BACKOFF_FIRST_SECONDS", 0.0)],
    ),
    "rejection": Weakening(
        "the lease is refused while AIC's rejection is remembered",
        lambda: [(token_table, "_NO_REJECTION_HOLDS", f"({ALWAYS} OR :negfar = :any OR :ver = :c1)")],
    ),
    "renew": Weakening(
        "a lease holder renews its lease before each retry, and stops when it cannot",
        lambda: [(TokenTable, "renew", _renew_without_writing)],
    ),
    "deadline": Weakening(
        "every vend ends by its deadline",
        lambda: [(Deadline, "remaining", _remaining_plus_one)],
    ),
    "make-before-break": Weakening(
        "a reported token serves others until its replacement is stored",
        lambda: [(TokenTable, "try_retire", _retire_breaking)],
    ),
    "reporter": Weakening(
        "a reporter never gets the reported token back",
        lambda: [(TokenVendor, "_memory_hit", _memory_hit_reporter)],
    ),
    "short": Weakening(
        "never less validity than asked (a need AIC's lifetime cannot meet is refused)",
        lambda: [(VendContext, "refuse_if_short", lambda self, token, need: None)],
    ),
    "memory-validity": Weakening(
        "the memory tier serves a token only with the validity asked for",
        lambda: [(TokenVendor, "_memory_hit", _memory_hit_short)],
    ),
    "table-validity": Weakening(
        "the table tier serves a token only with the validity asked for",
        lambda: [(VendContext, "table_hit", _table_hit_short)],
    ),
}


@contextlib.contextmanager
def weakened(name: str | None) -> Iterator[Callable[[TokenVendor], None]]:
    """Apply the switch's patches for the duration; yields what to apply to each vendor built."""
    if name is None:
        yield lambda vendor: None
        return
    weakening = WEAKENINGS[name]
    undo: list[tuple[Any, str, Any]] = []
    try:
        for owner, attribute, replacement in weakening.patches():
            undo.append((owner, attribute, owner.__dict__[attribute]))
            setattr(owner, attribute, replacement)
        yield weakening.vendor
    finally:
        for owner, attribute, original in reversed(undo):
            setattr(owner, attribute, original)


def describe() -> str:
    return "\n".join(f"  {name:18} {w.rule}" for name, w in WEAKENINGS.items())
