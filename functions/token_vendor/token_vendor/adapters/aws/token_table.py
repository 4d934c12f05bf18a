"""The shared DynamoDB cache: one item per cache key, with a lease for single-flight minting.

Timeline of one refresh cycle across containers A and B (compare Powertools' idempotency layer):

    A: GetItem -> miss            B: GetItem -> miss
    A: UpdateItem lease (wins)    B: UpdateItem lease -> ConditionalCheckFailed (A holds it)
    A: mint at AIC                B: poll GetItem with backoff ...
    A: PutItem token IF lease_holder = A   (the fence: if A's lease lapsed and C took over, A's late
                                            write fails instead of clobbering C's newer token)
                                  B: GetItem -> hit

DynamoDB deletes items after ``ttl`` only lazily (moto never does), so an item past its expiry by our
clock is a miss, whatever the table returns.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from token_vendor.adapters.aws import item_format
from token_vendor.adapters.aws.envelope import Envelope
from token_vendor.adapters.aws.item_format import MAX_CLOCK_DIFFERENCE
from token_vendor.adapters.aws.table_item import (
    ANY_VERSION,
    MAX_BACKOFF_SECONDS,
    MAX_REJECTION_SECONDS,
    REMEMBERED_CODES,
    ItemCodec,
    RecentScopeSet,
    Rejection,
    Retired,
    TableEntry,
    _fail,
    _is_condition_failure,
    token_aad,
)
from token_vendor.adapters.aws.use_records import ScanSlice, UseRecords
from token_vendor.kernel.cached_token import CachedToken, fingerprint
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import CacheUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger("token_vendor").getChild(__name__)

# The table's names, importable from here as before the item rules moved to table_item.
__all__ = [
    "ANY_VERSION",
    "CacheUnavailable",
    "RecentScopeSet",
    "Rejection",
    "Retired",
    "TableEntry",
    "TokenTable",
    "token_aad",
]


# The lease's conditions (free, fence) and values are item_format's, read from there at each call.
# No remembered rejection holds for this key version (CONTRACT section 8): absent, over, forged or malformed,
# of another secret version than the one in use, or a code this vendor never writes (planted).
_NO_REJECTION_HOLDS = (
    "(attribute_not_exists(neg_until) OR neg_until < :now OR neg_until > :negfar"
    " OR NOT attribute_type(neg_until, :num)"
    " OR (attribute_exists(neg_version) AND neg_version <> :any AND neg_version <> :ver)"
    " OR (attribute_exists(neg_code) AND neg_code <> :c1 AND neg_code <> :c2 AND neg_code <> :c3))"
)


def _rejection_values(now: float, key_version: str | None) -> dict[str, Any]:
    """What ``_NO_REJECTION_HOLDS`` compares with."""
    return {
        ":negfar": {"N": repr(now + MAX_REJECTION_SECONDS)},
        ":any": {"S": ANY_VERSION},
        ":ver": {"S": key_version or ANY_VERSION},
        **{f":c{i}": {"S": code} for i, code in enumerate(sorted(REMEMBERED_CODES), 1)},
    }


def _ignore(reason: str) -> None:
    return None


class TokenTable:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        clock: Callable[[], float],
        envelope: Envelope | None = None,
        on_misconfigured: Callable[[str], None] = _ignore,
    ) -> None:
        self._table = table_name
        self._client = client
        self._clock = clock
        self._envelope = envelope
        # ``on_misconfigured`` is told when KMS refuses for a reason that will not pass (the vendor's
        # CacheHealth logs it once and counts it).
        self._codec = ItemCodec(clock, envelope, on_misconfigured)
        self._uses = UseRecords(table_name, client, clock=clock)

    @property
    def name(self) -> str:
        return self._table

    def note_vended(self, key: str, now: float) -> None:
        """Record a caller's use of the scope set (use_records.UseRecords holds the rule)."""
        self._uses.note_vended(key, now)

    def recently_vended(
        self,
        since: float,
        deadline: Deadline,
        *,
        start: dict[str, Any] | None = None,
        pages: int = 10,
    ) -> ScanSlice:
        """Items a caller used after ``since``, in bounded pages (use_records.UseRecords holds the rule)."""
        return self._uses.recently_vended(since, deadline, start=start, pages=pages)

    def take_refresh_slot(self, key: str, limit: int) -> bool:
        """One of the fleet's scheduled refreshes for this minute (use_records.UseRecords holds the rule)."""
        return self._uses.take_refresh_slot(key, limit)

    def read(self, key: str) -> TableEntry:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _fail("read", exc) from exc
        return self._codec.entry(key, response.get("Item"))

    def try_lease(
        self,
        key: str,
        holder: str,
        seconds: float,
        fresh_seconds: float | None,
        *,
        key_version: str | None = None,
        refresh: bool = False,
    ) -> TableEntry:
        """Take the lease to mint, unless someone holds it, the item already has a fresh token, AIC's
        rejection is remembered, or (``refresh``) a failed refresh's backoff is running.

        Returns the item: ``granted`` when the lease is ours (as it was before), else as it stands (so a
        token stored a moment ago by the previous holder is served instead of minting again).
        ``fresh_seconds`` None ignores the stored token (it could not be read). A rejection of another
        secret version than ``key_version`` does not hold (a rotated key gets its chance at once).
        """
        now = self._clock()
        values = item_format.lease_values(holder, seconds, now)
        values.update(_rejection_values(now, key_version))
        conditions = [
            item_format.LEASE_FREE,
            _NO_REJECTION_HOLDS,
        ]
        if fresh_seconds is not None:
            conditions.append("(attribute_not_exists(expires_at) OR expires_at < :fresh)")
            values[":fresh"] = {"N": repr(now + fresh_seconds)}
        if refresh:
            conditions.append(
                "(attribute_not_exists(refresh_not_before) OR refresh_not_before < :now"
                " OR refresh_not_before > :backfar OR NOT attribute_type(refresh_not_before, :num))"
            )
            values[":backfar"] = {"N": repr(now + MAX_BACKOFF_SECONDS)}
        return self._lease(key, conditions, values)

    def try_retire(
        self,
        key: str,
        holder: str,
        seconds: float,
        rejected: str,
        min_interval: float,
        *,
        key_version: str | None = None,
    ) -> TableEntry:
        """Take the lease to replace the token a caller reported (CONTRACT section 5), if that token is
        still the stored one, the scope set was not retired within ``min_interval``, and no rejection of
        AIC's holds (a replacement would only be refused again)."""
        now = self._clock()
        values = item_format.lease_values(holder, seconds, now)
        values.update(
            {
                ":fp": {"S": rejected},
                ":since": {"N": repr(now - min_interval)},
                ":future": {"N": repr(now + MAX_CLOCK_DIFFERENCE)},
            }
        )
        values.update(_rejection_values(now, key_version))
        conditions = [
            item_format.LEASE_FREE,
            _NO_REJECTION_HOLDS,
            "fingerprint = :fp",
            "(attribute_not_exists(retired_at) OR retired_at < :since OR retired_at > :future"
            " OR NOT attribute_type(retired_at, :num))",
        ]
        return self._lease(key, conditions, values)

    def _lease(self, key: str, conditions: list[str], values: dict[str, Any]) -> TableEntry:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                # ttl is set, not kept: an idle item's old ttl would let DynamoDB's sweep delete it mid-mint.
                UpdateExpression="SET lease_holder = :h, lease_until = :u, #ttl = :ttl",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",  # the winner sees what it leased over (a short token, say)
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return self._codec.entry(key, exc.response.get("Item"))  # type: ignore[arg-type]
            raise _fail("lease", exc) from exc
        except BotoCoreError as exc:
            raise _fail("lease", exc) from exc
        return replace(self._codec.entry(key, response.get("Attributes")), granted=True)

    def renew(self, key: str, holder: str, seconds: float) -> bool:
        """Extend our lease (fenced: only while we still hold it). False if it was taken over."""
        now = self._clock()
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET lease_until = :u",
                ConditionExpression=item_format.RENEWABLE,
                ExpressionAttributeValues={
                    ":h": {"S": holder},
                    ":u": {"N": repr(now + seconds)},
                    ":now": {"N": repr(now)},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise _fail("lease renewal", exc) from exc
        except BotoCoreError as exc:
            raise _fail("lease renewal", exc) from exc
        return True

    def store(
        self,
        key: str,
        token: CachedToken,
        holder: str,
        retired: Retired | None = None,
        *,
        last_vended: float | None = None,
    ) -> bool:
        """Write the token if ``holder`` still holds the lease; False if it was fenced out. ``retired``
        records the last retirement (kept across refreshes for the operator's tool and the rate limit)."""
        item: dict[str, Any] = {
            "pk": {"S": key},
            "expires_at": {"N": repr(token.expires_at)},
            "ttl": {"N": str(math.ceil(token.expires_at))},
            "scope": {"S": token.scope},
            # In clear: retirement and the operator's tool compare fingerprints without a KMS call.
            "fingerprint": {"S": fingerprint(token.access_token)},
            "lifetime": {"N": repr(float(token.lifetime))},
        }
        if token.key_version:
            item["key_version"] = {"S": token.key_version}  # in clear: the operator sees which key signs
        if last_vended is not None:
            item["last_vended"] = {"N": repr(last_vended)}
        if retired is not None:
            item["retired_fp"] = {"S": retired.fingerprint}
            item["retired_at"] = {"N": repr(retired.at)}
        item.update(self._codec.seal_token(key, token))
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=item_format.FENCE,
                ExpressionAttributeValues={":h": {"S": holder}},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                logger.warning("lease lapsed before the token was stored; a newer holder wins")
                return False
            raise _fail("write", exc) from exc
        except BotoCoreError as exc:
            raise _fail("write", exc) from exc
        return True

    def release(
        self,
        key: str,
        holder: str,
        rejection: Rejection | None = None,
        *,
        backoff: float | None = None,
    ) -> None:
        """Give the lease back (after a failed mint), optionally remembering an upstream rejection or the
        backoff after a failed refresh (CONTRACT section 8)."""
        sets: list[str] = []
        values: dict[str, Any] = {":h": {"S": holder}}
        if rejection is not None:
            # No message is stored: callers read only text the vendor composes (CONTRACT section 7).
            sets.append("neg_until = :nu, neg_code = :nc, neg_scopes = :ns, neg_version = :nv")
            values.update(
                {
                    ":nu": {"N": repr(rejection.until)},
                    ":nc": {"S": rejection.upstream_code},
                    ":ns": {"S": " ".join(rejection.scopes) or "-"},
                    ":nv": {"S": rejection.version},
                }
            )
        if backoff is not None:
            sets.append("refresh_not_before = :rb, refresh_backoff = :rs")
            values[":rb"] = {"N": repr(self._clock() + backoff)}
            values[":rs"] = {"N": repr(backoff)}
        update = ("SET " + ", ".join(sets) + " " if sets else "") + "REMOVE lease_holder, lease_until"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression=update,
                ConditionExpression=item_format.RELEASABLE,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                logger.warning("could not release the lease", extra={"reason": str(_fail("release", exc))})
        except BotoCoreError as exc:
            logger.warning("could not release the lease", extra={"reason": str(_fail("release", exc))})
