"""The scheduled refresh's view of the token table: which scope sets callers used lately (issue 25), read
in bounded pages, and the fleet's count of scheduled refreshes per minute (issue 30).

Rules:
- a use is recorded as the item's ``last_vended``, never creating an item; only bounded times are read
  back (a use in the future is ignored), and no token, lease or rejection is part of the view;
- a scan reads at most ``pages`` pages of at most ``SCAN_PAGE_ITEMS`` items each (DynamoDB's ``Limit``
  counts the items it reads, before the filter, and a page is at most 1 MB), stops when its deadline is
  near, and says where it stopped, so the next run carries on from there (docs/decisions.md);
- the refresh counter is one item per deployment, keyed so no scope set can spell it (``"`` is in no
  scope): at most ``limit`` slots per minute, fleet-wide, counted by conditional updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from token_vendor.adapters.aws.table_item import (
    MAX_CLOCK_SKEW,
    MAX_TOKEN_LIFETIME,
    RecentScopeSet,
    _fail,
    _is_condition_failure,
    _number,
    _string,
)
from token_vendor.kernel.deadline import Deadline

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SCAN_PAGE_ITEMS = 100  # DynamoDB's Limit: items read per page, before the filter
MIN_PAGE_SECONDS = 0.5  # less than this left for the scan: stop, the next run carries on from the cursor
COUNTER_WINDOW_SECONDS = 60
_COUNTER_TTL_SECONDS = 3600  # an idle deployment's counter item goes away


@dataclass
class ScanSlice:
    """What one bounded scan found, and where the next one starts (None: this pass reached the end)."""

    found: list[RecentScopeSet] = field(default_factory=list)
    resume_at: dict[str, Any] | None = None
    pages: int = 0
    items_read: int = 0


def refresh_counter_key(tenant: str, account: str) -> str:
    """The counter's key: a scope cannot contain '"' (RFC 6749 section 3.3), so no cache key is this one."""
    return f'{tenant}|{account}|"scheduled-refreshes"'


class UseRecords:
    """Recording and finding recent uses; ``TokenTable`` holds one over its client, table and clock."""

    def __init__(self, table_name: str, client: DynamoDBClient, *, clock: Callable[[], float]) -> None:
        self._table = table_name
        self._client = client
        self._clock = clock

    def note_vended(self, key: str, now: float) -> None:
        """Record a caller's use of the scope set (for the scheduled refresh); never creates an item."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET last_vended = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": {"N": repr(now)}},
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise _fail("use record", exc) from exc
        except BotoCoreError as exc:
            raise _fail("use record", exc) from exc

    def recently_vended(
        self,
        since: float,
        deadline: Deadline,
        *,
        start: dict[str, Any] | None = None,
        pages: int = 10,
    ) -> ScanSlice:
        """Items a caller used after ``since`` (bounded times only), for the scheduled refresh: at most
        ``pages`` pages from ``start``, ending before ``deadline``. A page that fails after others were read
        ends the slice there (it is retried by the next run); a first page that fails is CacheUnavailable."""
        now = self._clock()
        found = ScanSlice(resume_at=start)
        while found.pages < pages and deadline.remaining() >= MIN_PAGE_SECONDS:
            request: dict[str, Any] = {
                "TableName": self._table,
                "Limit": SCAN_PAGE_ITEMS,
                # Only what the view needs travels back: a large attribute someone planted is not sent.
                "ProjectionExpression": "pk, #scope, expires_at, lifetime, last_vended",
                "FilterExpression": "last_vended > :since AND last_vended <= :far",
                "ExpressionAttributeNames": {"#scope": "scope"},
                "ExpressionAttributeValues": {
                    ":since": {"N": repr(since)},
                    ":far": {"N": repr(now + MAX_CLOCK_SKEW)},
                },
            }
            if found.resume_at:
                request["ExclusiveStartKey"] = found.resume_at
            try:
                page = self._client.scan(**request)
            except (ClientError, BotoCoreError) as exc:
                if found.pages:
                    break
                raise _fail("scan", exc) from exc
            found.pages += 1
            found.items_read += int(page.get("ScannedCount", len(page.get("Items", []))))
            for item in page.get("Items", []):
                recent = _recent(item)
                if recent is not None:
                    found.found.append(recent)
            found.resume_at = page.get("LastEvaluatedKey") or None
            if found.resume_at is None:
                break
        return found

    def take_refresh_slot(self, key: str, limit: int) -> bool:
        """One of ``limit`` scheduled refreshes this minute, fleet-wide. The minute is the window of the
        clock that opened it: a container whose clock is behind by less than a minute counts in it too, and
        a clock behind never opens a window again (two clocks cannot take turns opening fresh ones)."""
        now = self._clock()
        window = math.floor(now / COUNTER_WINDOW_SECONDS)
        values: dict[str, Any] = {
            ":w": {"N": str(window)},
            ":next": {"N": str(window + 1)},
            ":one": {"N": "1"},
        }
        counted = {**values, ":below": {"N": str(limit - 1)}}  # a count is 1 .. limit, as written
        opened = {**values, ":num": {"S": "N"}, ":ttl": {"N": str(int(now) + _COUNTER_TTL_SECONDS)}}
        # Count in the open window; else open this minute's (the count absent, older, planted far ahead or
        # malformed, a count below one included); else, if another run opened it a moment ago, count in
        # that one.
        return (
            self._counted(
                key,
                "SET refresh_count = refresh_count + :one",
                "refresh_window >= :w AND refresh_window <= :next AND refresh_count BETWEEN :one AND :below",
                counted,
            )
            or self._counted(
                key,
                "SET refresh_window = :w, refresh_count = :one, #ttl = :ttl",
                "attribute_not_exists(refresh_window) OR NOT attribute_type(refresh_window, :num)"
                " OR NOT attribute_type(refresh_count, :num) OR refresh_count < :one"
                " OR refresh_window < :w OR refresh_window > :next",
                opened,
                {"#ttl": "ttl"},
            )
            or self._counted(
                key,
                "SET refresh_count = refresh_count + :one",
                "refresh_window >= :w AND refresh_window <= :next AND refresh_count BETWEEN :one AND :below",
                counted,
            )
        )

    def _counted(
        self,
        key: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": names} if names else {}),  # type: ignore[arg-type]
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise _fail("refresh count", exc) from exc
        except BotoCoreError as exc:
            raise _fail("refresh count", exc) from exc
        return True


def _recent(item: dict[str, Any]) -> RecentScopeSet | None:
    try:
        expires_at = _number(item, "expires_at")
        lifetime = _number(item, "lifetime") or 0.0
        return RecentScopeSet(
            _string(item, "pk"),
            _string(item, "scope"),
            expires_at,
            lifetime if 0 < lifetime <= MAX_TOKEN_LIFETIME else 0.0,
        )
    except (KeyError, TypeError, ValueError):
        return None  # malformed: not ours to refresh
