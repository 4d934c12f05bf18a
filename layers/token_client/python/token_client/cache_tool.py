"""The operator's view of the vendor's shared cache: ``aic-token cache status|flush``.

Needs DynamoDB permissions on the table only (``dynamodb:Scan`` for status, ``dynamodb:Scan`` and
``dynamodb:DeleteItem`` for flush): fingerprints, expiries, leases and rejections are stored in clear, so
no KMS call is made and no token is ever read or printed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from token_client.errors import AccessDenied, SetupError, TransportError
from token_client.transports import REFUSED_CREDENTIALS, local_problem


@dataclass(frozen=True)
class CachedSet:
    key: str
    scopes: str  # the scope set, or '"sha256" <hash>' for a long one
    seconds_left: int | None  # None: no token stored
    fingerprint: str | None
    lease_held: bool
    rejection: str | None  # the remembered upstream error code
    rejection_seconds_left: int | None
    last_retired: str | None  # fingerprint of the last retired token
    last_retired_seconds_ago: int | None
    key_version: str | None = None  # the secret version whose key minted the stored token


def _number(item: dict[str, Any], name: str) -> float | None:
    try:
        return float(item[name]["N"]) if name in item else None
    except (KeyError, TypeError, ValueError):
        return None


def _string(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return value if isinstance(value, str) else None


def scope_parts(scopes: Iterable[str]) -> set[str]:
    """The ways the vendor's cache key may spell a scope set: plain, or hashed when the key is too long."""
    joined = " ".join(sorted({s for part in scopes for s in part.split()}))
    return {joined, f'"sha256" {hashlib.sha256(joined.encode()).hexdigest()}'}


def describe(item: dict[str, Any], now: float) -> CachedSet:
    key = _string(item, "pk") or ""
    expires_at = _number(item, "expires_at")
    lease_until = _number(item, "lease_until")
    neg_until = _number(item, "neg_until")
    retired_at = _number(item, "retired_at")
    live_token = expires_at is not None and expires_at > now
    live_rejection = neg_until is not None and neg_until > now
    return CachedSet(
        key=key,
        scopes=key.split("|", 2)[-1],
        seconds_left=int(expires_at - now) if live_token and expires_at is not None else None,
        fingerprint=_string(item, "fingerprint") if live_token else None,
        lease_held=lease_until is not None and lease_until > now,
        rejection=_string(item, "neg_code") if live_rejection else None,
        rejection_seconds_left=int(neg_until - now) if live_rejection and neg_until is not None else None,
        last_retired=_string(item, "retired_fp"),
        last_retired_seconds_ago=int(now - retired_at) if retired_at is not None else None,
        key_version=_string(item, "key_version") if live_token else None,
    )


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
                    ProjectionExpression="pk, expires_at, fingerprint, lease_until, neg_until, neg_code, "
                    "retired_fp, retired_at, key_version",
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
        wanted = scope_parts(scopes)
        return [key for key in keys if key.split("|", 2)[-1] in wanted]

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
