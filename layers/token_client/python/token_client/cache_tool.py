"""The operator's view of the vendor's shared cache: ``aic-token cache status|flush``.

Needs DynamoDB permissions on the table only (``dynamodb:Scan`` for status, ``dynamodb:Scan`` and
``dynamodb:DeleteItem`` for flush): fingerprints, expiries, leases and rejections are stored in clear, so
no KMS call is made and no token is ever read or printed. The item is read by the vendor's own rules
(``item_format.py``, a generated copy of the vendor's): the same cache key, and a lease held as the vendor
judges it (until its clock tolerance after its end).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from token_client.errors import AccessDenied, SetupError, TransportError
from token_client.item_format import STATUS_ATTRIBUTES, CachedSet, describe, key_names
from token_client.transports import REFUSED_CREDENTIALS, local_problem


def normalise(scopes: Iterable[str]) -> list[str]:
    """The scope set as the vendor normalises it (split on spaces, de-duplicated, sorted)."""
    return sorted({s for part in scopes for s in part.split()})


class CacheTool:
    def __init__(self, table: str, client: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._client = client
        self._clock = clock

    @classmethod
    def for_table(cls, table: str, *, region: str | None = None, profile: str | None = None) -> CacheTool:
        from token_client.regions import resolve_region
        from token_client.transports import new_session

        try:
            session = new_session(profile)
            client = session.create_client("dynamodb", region_name=resolve_region(region, session=session))
        except BotoCoreError as exc:
            raise local_problem(exc) from exc
        return cls(table, client)

    def _items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        try:
            while True:
                page = self._client.scan(
                    TableName=self._table,
                    ProjectionExpression=", ".join(STATUS_ATTRIBUTES),
                    ConsistentRead=True,
                    **({"ExclusiveStartKey": start} if start else {}),
                )
                items.extend(page.get("Items", []))
                start = page.get("LastEvaluatedKey")
                if not start:
                    return items
        except ClientError as exc:
            raise _error(exc, self._table) from exc
        except BotoCoreError as exc:
            raise local_problem(exc) from exc

    def status(self) -> list[CachedSet]:
        now = self._clock()
        return sorted((describe(item, now) for item in self._items()), key=lambda c: c.scopes)

    def status_text(self, *, as_json: bool = False) -> str:
        sets = self.status()
        if as_json:
            return json.dumps([asdict(s) for s in sets], indent=2)
        if not sets:
            return f"{self._table}: no cached scope sets"
        lines = [
            f"{'scope set':<40} {'left':>6} {'fingerprint':<12} {'key':<8} {'lease':<5} {'rejection':<20} "
            "last retired"
        ]
        for s in sets:
            rejection = f"{s.rejection} ({s.rejection_seconds_left}s)" if s.rejection else "-"
            retired = f"{s.last_retired} ({s.last_retired_seconds_ago}s ago)" if s.last_retired else "-"
            key = (s.key_version or "-")[:8]
            lease = "held" if s.lease_held else "-"
            lines.append(
                f"{s.scopes[:40]:<40} {s.seconds_left if s.seconds_left is not None else '-':>6} "
                f"{s.fingerprint or '-':<12} {key:<8} {lease:<5} {rejection:<20} {retired}"
            )
        return "\n".join(lines)

    def targets(self, scopes: list[str] | None) -> list[str]:
        keys = [item["pk"]["S"] for item in self._items()]
        if scopes is None:
            return keys
        wanted = normalise(scopes)
        return [key for key in keys if key_names(key, wanted)]

    def flush(self, keys: list[str]) -> int:
        try:
            for key in keys:
                self._client.delete_item(TableName=self._table, Key={"pk": {"S": key}})
        except ClientError as exc:
            raise _error(exc, self._table) from exc
        except BotoCoreError as exc:
            raise local_problem(exc) from exc
        return len(keys)


def _error(exc: ClientError, table: str) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in ("AccessDeniedException", "AccessDenied"):
        return AccessDenied(f"not allowed to read or change table {table} ({code})")
    if code == "ResourceNotFoundException":
        return SetupError(f"no table {table} (check --table, the region and AWS_ENDPOINT_URL)")
    if code in REFUSED_CREDENTIALS:
        return SetupError(REFUSED_CREDENTIALS[code])
    return TransportError(f"DynamoDB error on {table}: {code or 'unknown'}")
