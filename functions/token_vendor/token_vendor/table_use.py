"""The scheduled refresh's view of the token table: which scope sets callers used lately (issue 25).

Rule: a use is recorded as the item's ``last_vended``, never creating an item; only bounded times are read
back (a use in the future is ignored), and no token, lease or rejection is part of the view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from token_vendor.table_item import (
    MAX_CLOCK_SKEW,
    MAX_TOKEN_LIFETIME,
    RecentScopeSet,
    _fail,
    _is_condition_failure,
    _number,
    _string,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


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

    def recently_vended(self, since: float, limit: int = 1000) -> list[RecentScopeSet]:
        """Items a caller used after ``since`` (bounded times only), for the scheduled refresh."""
        now = self._clock()
        found: list[RecentScopeSet] = []
        start: dict[str, Any] | None = None
        try:
            while len(found) < limit:
                request: dict[str, Any] = {
                    "TableName": self._table,
                    "ProjectionExpression": "pk, #scope, expires_at, lifetime, last_vended",
                    "FilterExpression": "last_vended > :since AND last_vended <= :far",
                    "ExpressionAttributeNames": {"#scope": "scope"},
                    "ExpressionAttributeValues": {
                        ":since": {"N": repr(since)},
                        ":far": {"N": repr(now + MAX_CLOCK_SKEW)},
                    },
                }
                if start:
                    request["ExclusiveStartKey"] = start
                page = self._client.scan(**request)
                for item in page.get("Items", []):
                    try:
                        expires_at = _number(item, "expires_at")
                        lifetime = _number(item, "lifetime") or 0.0
                        found.append(
                            RecentScopeSet(
                                _string(item, "pk"),
                                _string(item, "scope"),
                                expires_at,
                                lifetime if 0 < lifetime <= MAX_TOKEN_LIFETIME else 0.0,
                            )
                        )
                    except (KeyError, TypeError, ValueError):
                        continue  # malformed: not ours to refresh
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
        except ClientError as exc:
            raise _fail("scan", exc) from exc
        except BotoCoreError as exc:
            raise _fail("scan", exc) from exc
        return found[:limit]
