"""The token table's item, in clear: its key, the lease it carries, and what an operator may read of it.

One owner for every reader of the table: the vendor (``token_table``, ``table_item``, ``fleet_lease``) and
the operator's ``aic-token cache``, which ships a generated copy of this file (``tools/item_format.py``
writes it; a test holds the copy equal). So this module imports nothing but the standard library.

The lease's timeline (CONTRACT section 8: "a lease holder never works past its lease"): a holder writes
``lease_until`` = its start + the lease and stops its work ``LEASE_MARGIN_SECONDS`` before that; another
container takes the lease over only ``LEASE_CLOCK_TOLERANCE`` after ``lease_until`` by its own clock, so two
containers whose clocks differ by up to ``MAX_CLOCK_DIFFERENCE`` never hold it at once. A ``lease_until``
further ahead than any holder writes (``MAX_LEASE_SECONDS``), or not a number, is forged and free. The loop
that takes, renews and waits on the lease is ``vend/fleet_lease.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A DynamoDB partition key is at most 2048 bytes; 20 scopes of 128 characters would not fit.
MAX_PLAIN_KEY = 1024

LEASE_MARGIN_SECONDS = 0.5  # the holder's work ends this much before its lease does
MAX_CLOCK_DIFFERENCE = 4.0  # the most two containers' clocks may differ (the simulation skews each by ±2 s)
LEASE_CLOCK_TOLERANCE = MAX_CLOCK_DIFFERENCE - LEASE_MARGIN_SECONDS
MAX_LEASE_SECONDS = 30.0  # a lease further ahead than this code ever writes is forged: ignored
LEASE_ITEM_TTL = 3600  # keeps an item that only ever held a lease or a rejection from lingering forever

# The lease is free: absent, lapsed (by more than the clocks of two containers may differ), forged (further
# ahead than any holder sets) or malformed. ``token_table`` reads it from here at each call.
LEASE_FREE = (
    "(attribute_not_exists(lease_until) OR lease_until < :lapsed OR lease_until > :far"
    " OR NOT attribute_type(lease_until, :num))"
)
# The fence: a token is written, and a lease released, only by the holder of the lease (a lapsed holder
# taken over writes nothing and releases nothing).
FENCE = "lease_holder = :h"
RELEASABLE = FENCE  # its own name, so the simulator can break the release's fence alone
# A renewal: only by the holder, only while its lease has not ended.
RENEWABLE = "lease_holder = :h AND lease_until >= :now"

# What ``aic-token cache status`` reads: fingerprints, expiries, leases and rejections, never a token.
STATUS_ATTRIBUTES = (
    "pk",
    "expires_at",
    "fingerprint",
    "lease_until",
    "neg_until",
    "neg_code",
    "retired_fp",
    "retired_at",
    "key_version",
)


def scope_part(scopes: Sequence[str]) -> str:
    """The scope set as a key spells it: space-joined, in the order given (callers pass it normalised)."""
    return " ".join(scopes)


def cache_key(tenant: str, account: str, scopes: Sequence[str]) -> str:
    """One key per (tenant, account, normalised scope set); never shared with a superset."""
    joined = scope_part(scopes)
    key = f"{tenant}|{account}|{joined}"
    if len(key.encode()) > MAX_PLAIN_KEY:
        # '"' can appear in no scope (RFC 6749 section 3.3), so no requested scope set can spell this key:
        # a request for the single scope "sha256:H" must not read the hashed set's token.
        key = f'{tenant}|{account}|"sha256" {hashlib.sha256(joined.encode()).hexdigest()}'
    return key


def key_names(key: str, scopes: Sequence[str]) -> bool:
    """The stored key is the one the vendor computes for these (normalised) scopes, in its own tenant."""
    tenant, _, rest = key.partition("|")
    account, _, _ = rest.partition("|")
    return cache_key(tenant, account, scopes) == key


def lease_values(holder: str, seconds: float, now: float) -> dict[str, Any]:
    """What every lease write sets and checks: holder, end, a TTL past the lease, and the free-lease test."""
    return {
        ":h": {"S": holder},
        ":u": {"N": repr(now + seconds)},
        ":now": {"N": repr(now)},
        ":lapsed": {"N": repr(now - LEASE_CLOCK_TOLERANCE)},
        ":ttl": {"N": str(int(now + seconds) + LEASE_ITEM_TTL)},
        ":far": {"N": repr(now + MAX_LEASE_SECONDS)},
        ":num": {"S": "N"},
    }


def lease_held(lease_until: float | None, now: float) -> bool:
    """Someone holds the lease, as ``LEASE_FREE`` judges it: until LEASE_CLOCK_TOLERANCE after its end by
    our clock, and only if it is no further ahead than any holder writes."""
    return lease_until is not None and now - LEASE_CLOCK_TOLERANCE <= lease_until <= now + MAX_LEASE_SECONDS


@dataclass(frozen=True)
class CachedSet:
    """One scope set as an operator sees it (``aic-token cache status``)."""

    key: str
    scopes: str  # the scope set, or '"sha256" <hash>' for a long one
    seconds_left: int | None  # None: no token stored
    fingerprint: str | None
    lease_held: bool
    rejection: str | None  # the remembered upstream error code
    rejection_seconds_left: int | None
    last_retired: str | None  # fingerprint of the last retired token
    last_retired_seconds_ago: int | None
    key_version: str | None = None  # the key version that minted the stored token


def _number(item: Mapping[str, Any], name: str) -> float | None:
    try:
        return float(item[name]["N"]) if name in item else None
    except (KeyError, TypeError, ValueError):
        return None


def _string(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name, {})
    value = value.get("S") if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else None


def describe(item: Mapping[str, Any], now: float) -> CachedSet:
    """The operator's view of one item, by the vendor's rules (a lease is held as the vendor judges it)."""
    key = _string(item, "pk") or ""
    expires_at = _number(item, "expires_at")
    neg_until = _number(item, "neg_until")
    retired_at = _number(item, "retired_at")
    live_token = expires_at is not None and expires_at > now
    live_rejection = neg_until is not None and neg_until > now
    return CachedSet(
        key=key,
        scopes=key.split("|", 2)[-1],
        seconds_left=int(expires_at - now) if live_token and expires_at is not None else None,
        fingerprint=_string(item, "fingerprint") if live_token else None,
        lease_held=lease_held(_number(item, "lease_until"), now),
        rejection=_string(item, "neg_code") if live_rejection else None,
        rejection_seconds_left=int(neg_until - now) if live_rejection and neg_until is not None else None,
        last_retired=_string(item, "retired_fp"),
        last_retired_seconds_ago=int(now - retired_at) if retired_at is not None else None,
        key_version=_string(item, "key_version") if live_token else None,
    )
