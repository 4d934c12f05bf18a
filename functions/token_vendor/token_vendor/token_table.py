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

import base64
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from token_vendor.cached_token import CachedToken
from token_vendor.envelope import Envelope, EnvelopeError, Sealed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger("token_vendor").getChild(__name__)

# Keeps an item that only ever held a lease or a rejection from lingering forever.
_LEASE_ITEM_TTL = 3600


class CacheUnavailable(Exception):
    """DynamoDB (or KMS for the cache) failed: the caller degrades to minting without the shared cache."""


@dataclass(frozen=True)
class Rejection:
    message: str
    upstream_code: str
    scopes: tuple[str, ...]
    until: float


@dataclass(frozen=True)
class TableEntry:
    token: CachedToken | None
    lease_until: float | None
    rejection: Rejection | None
    unreadable: bool = False  # a live token is there but cannot be decrypted (moved, altered, KMS refused)


_EMPTY = TableEntry(None, None, None)


def _fail(action: str, exc: Exception) -> CacheUnavailable:
    if isinstance(exc, ClientError):
        reason = exc.response.get("Error", {}).get("Code", "ClientError")
    else:
        reason = type(exc).__name__
    return CacheUnavailable(f"token table {action} failed: {reason}")


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class TokenTable:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        clock: Callable[[], float],
        envelope: Envelope | None = None,
    ) -> None:
        self._table = table_name
        self._client = client
        self._clock = clock
        self._envelope = envelope

    def read(self, key: str) -> TableEntry:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _fail("read", exc) from exc
        return self._entry(key, response.get("Item"))

    def try_lease(
        self, key: str, holder: str, seconds: float, fresh_seconds: float | None
    ) -> TableEntry | None:
        """Take the lease to mint, unless someone holds it or the item already has a fresh token.

        Returns None when the lease is ours, else the item as it stands (so a token stored a moment ago
        by the previous holder is served instead of minting again). ``fresh_seconds`` None ignores the
        stored token (it could not be read).
        """
        now = self._clock()
        condition = "attribute_not_exists(lease_until) OR lease_until < :now"
        values: dict[str, Any] = {
            ":h": {"S": holder},
            ":u": {"N": repr(now + seconds)},
            ":now": {"N": repr(now)},
            ":ttl": {"N": str(int(now) + _LEASE_ITEM_TTL)},
        }
        if fresh_seconds is not None:
            condition = f"({condition}) AND (attribute_not_exists(expires_at) OR expires_at < :fresh)"
            values[":fresh"] = {"N": repr(now + fresh_seconds)}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET lease_holder = :h, lease_until = :u, #ttl = if_not_exists(#ttl, :ttl)",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return self._entry(key, exc.response.get("Item"))  # type: ignore[arg-type]
            raise _fail("lease", exc) from exc
        except BotoCoreError as exc:
            raise _fail("lease", exc) from exc
        return None

    def _entry(self, key: str, item: dict[str, Any] | None) -> TableEntry:
        if not item:
            return _EMPTY
        now = self._clock()
        lease_until = float(item["lease_until"]["N"]) if "lease_until" in item else None
        rejection = None
        if "neg_until" in item and float(item["neg_until"]["N"]) > now:
            rejection = Rejection(
                message=item.get("neg_message", {}).get("S", "rejected by the token endpoint"),
                upstream_code=item.get("neg_code", {}).get("S", "invalid_scope"),
                scopes=tuple(item.get("neg_scopes", {}).get("S", "").split()),
                until=float(item["neg_until"]["N"]),
            )
        token = None
        unreadable = False
        if "expires_at" in item and float(item["expires_at"]["N"]) > now:
            access_token = self._open_token(key, item)
            if access_token is not None:
                token = CachedToken(access_token, float(item["expires_at"]["N"]), item["scope"]["S"])
            else:
                unreadable = True
        return TableEntry(token, lease_until, rejection, unreadable)

    def store(self, key: str, token: CachedToken, holder: str) -> bool:
        """Write the token if ``holder`` still holds the lease; False if it was fenced out."""
        item: dict[str, Any] = {
            "pk": {"S": key},
            "expires_at": {"N": repr(token.expires_at)},
            "ttl": {"N": str(math.ceil(token.expires_at))},
            "scope": {"S": token.scope},
        }
        item.update(self._seal_token(key, token.access_token))
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="lease_holder = :h",
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

    def release(self, key: str, holder: str, rejection: Rejection | None = None) -> None:
        """Give the lease back (after a failed mint), optionally remembering an upstream rejection."""
        update = "REMOVE lease_holder, lease_until"
        values: dict[str, Any] = {":h": {"S": holder}}
        if rejection is not None:
            update = "SET neg_until = :nu, neg_message = :nm, neg_code = :nc, neg_scopes = :ns " + update
            values.update(
                {
                    ":nu": {"N": repr(rejection.until)},
                    ":nm": {"S": rejection.message},
                    ":nc": {"S": rejection.upstream_code},
                    ":ns": {"S": " ".join(rejection.scopes) or "-"},
                }
            )
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression=update,
                ConditionExpression="lease_holder = :h",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                logger.warning("could not release the lease", extra={"reason": str(_fail("release", exc))})
        except BotoCoreError as exc:
            logger.warning("could not release the lease", extra={"reason": str(_fail("release", exc))})

    def _seal_token(self, key: str, access_token: str) -> dict[str, Any]:
        if self._envelope is None:
            return {"token": {"S": access_token}}
        try:
            sealed = self._envelope.seal(access_token.encode(), key.encode())
        except (ClientError, BotoCoreError) as exc:
            raise _fail("encrypt (KMS)", exc) from exc
        return {
            "token_ct": {"B": sealed.ciphertext},
            "token_nonce": {"B": sealed.nonce},
            "token_key": {"B": sealed.wrapped_key},
        }

    def _open_token(self, key: str, item: dict[str, Any]) -> str | None:
        if "token" in item:
            if self._envelope is not None:
                logger.warning("ignoring an unencrypted cached token while encryption is on")
                return None
            return str(item["token"]["S"])
        if self._envelope is None or "token_ct" not in item:
            return None
        sealed = Sealed(
            ciphertext=_binary(item["token_ct"]),
            nonce=_binary(item["token_nonce"]),
            wrapped_key=_binary(item["token_key"]),
        )
        try:
            return self._envelope.open(sealed, key.encode()).decode()
        except EnvelopeError:
            logger.warning("cached token failed to decrypt; treating it as a miss")
            return None
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "KMS could not unwrap the data key; treating it as a miss",
                extra={"reason": str(_fail("decrypt (KMS)", exc))},
            )
            return None


def _binary(attribute: dict[str, Any]) -> bytes:
    value = attribute["B"]
    return value if isinstance(value, bytes) else base64.b64decode(value)
