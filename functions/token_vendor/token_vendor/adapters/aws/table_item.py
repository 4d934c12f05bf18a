"""One item of the token table, read and written under the rules a table writer cannot bend (CONTRACT 8).

Rule: a writer without the KMS key can at most make a scope set miss or be refused for 120 s. Every time
read from an item is bounded (a lease at most 30 s ahead, a rejection 120 s, a backoff 120 s; a retirement
or a use in the future is ignored); the token's key, expiry, scope and lifetime are its AES-GCM associated
data, so a moved, re-dated, re-scoped or re-lifed token does not open (a miss); a malformed item is a miss
and a warning, never an error; a rejection is only a code this vendor writes, and no text is read.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from token_vendor.adapters.aws.envelope import Envelope, Sealed
from token_vendor.adapters.aws.item_format import MAX_CLOCK_DIFFERENCE, MAX_LEASE_SECONDS, lease_held
from token_vendor.kernel.cached_token import CachedToken
from token_vendor.kernel.errors import CacheUnavailable, EnvelopeError

logger = logging.getLogger("token_vendor").getChild(__name__)

# Without encryption the expiry cannot be authenticated: one further ahead than AIC ever issues (899 s)
# is a forgery by someone who can write the table, and a miss.
MAX_PLAIN_EXPIRY_AHEAD = 3600
# Containers' clocks differ a little: the writer's expiry can look this much further ahead to a reader.
MAX_CLOCK_SKEW = 60.0
MAX_TOKEN_LIFETIME = 86_400.0  # the longest expires_in the vendor accepts from AIC (CONTRACT section 8)
# A rejection or a refresh backoff further ahead than this code ever writes is forged: ignored (a lease:
# item_format.MAX_LEASE_SECONDS).
MAX_REJECTION_SECONDS = 120.0
MAX_BACKOFF_SECONDS = 120.0
ANY_VERSION = "*"  # a rejection that holds whatever the secret version (invalid_scope)
REMEMBERED_CODES = frozenset({"invalid_scope", "invalid_client", "invalid_grant"})


@dataclass(frozen=True)
class Rejection:
    upstream_code: str
    scopes: tuple[str, ...]
    until: float
    version: str = ANY_VERSION  # the secret version AIC refused (invalid_client/invalid_grant)


@dataclass(frozen=True)
class TableEntry:
    token: CachedToken | None
    lease_until: float | None
    rejection: Rejection | None
    unreadable: bool = False  # a token is there but cannot be trusted (moved, altered, malformed, KMS)
    refresh_not_before: float | None = None  # after a failed refresh, nobody tries again before this
    refresh_backoff: float | None = None
    retired: Retired | None = None  # the last retirement of a token of this scope set
    granted: bool = False  # from a lease attempt: the lease is ours, and this is the item as it was
    last_vended: float | None = None  # when a container last recorded a caller's vend (scheduled refresh)

    def lease_held(self, now: float) -> bool:
        """Someone holds the lease, as the lease's condition judges it (item_format.lease_held)."""
        return lease_held(self.lease_until, now)


@dataclass(frozen=True)
class RecentScopeSet:
    """An item a caller used recently, as the scheduled refresh sees it (no token, no lease)."""

    key: str
    scope: str
    expires_at: float | None
    lifetime: float


@dataclass(frozen=True)
class Retired:
    fingerprint: str
    at: float


_EMPTY = TableEntry(None, None, None)
_MISCONFIGURED_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "NotFoundException",
        "DisabledException",
        "KMSInvalidStateException",
        "InvalidKeyUsageException",
    }
)


def _fail(action: str, exc: Exception) -> CacheUnavailable:
    if isinstance(exc, ClientError):
        reason = exc.response.get("Error", {}).get("Code", "ClientError")
        if reason in _MISCONFIGURED_CODES:
            return CacheUnavailable(f"token table {action} failed: {reason}", misconfigured=True)
    else:
        reason = type(exc).__name__
    return CacheUnavailable(f"token table {action} failed: {reason}")


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _number(item: dict[str, Any], name: str) -> float | None:
    """A number attribute, or None when absent; malformed (wrong type, not finite) raises ValueError."""
    if name not in item:
        return None
    value = float(item[name]["N"])
    if not math.isfinite(value):
        raise ValueError(name)
    return value


def _string(item: dict[str, Any], name: str, default: str = "") -> str:
    value = item.get(name, {"S": default})["S"]
    if not isinstance(value, str):
        raise TypeError(name)
    return value


_VERSION = re.compile(r"[A-Za-z0-9-]{1,64}")


def token_aad(key: str, expires_at: float, scope: str, lifetime: float) -> bytes:
    """What AES-GCM authenticates with the token: the item's key, its expiry, its scope and its lifetime.
    A table writer who moves a token, extends its expiry or shortens its lifetime gets a ciphertext that
    no longer opens (a miss)."""
    return f"{key}\n{expires_at!r}\n{scope}\n{lifetime!r}".encode()


class ItemCodec:
    """Reads an item into a ``TableEntry`` (bounded, authenticated) and seals a token for one."""

    def __init__(
        self,
        clock: Callable[[], float],
        envelope: Envelope | None,
        on_misconfigured: Callable[[str], None],
    ) -> None:
        self._clock = clock
        self._envelope = envelope
        self._on_misconfigured = on_misconfigured

    def entry(self, key: str, item: dict[str, Any] | None) -> TableEntry:
        if not item:
            return _EMPTY
        now = self._clock()
        try:
            lease_until = _number(item, "lease_until")
            if lease_until is not None and lease_until > now + MAX_LEASE_SECONDS:
                lease_until = None  # forged: further ahead than any holder sets
        except (KeyError, TypeError, ValueError):
            lease_until = None
        try:
            rejection = self.rejection(item, now)
        except (KeyError, TypeError, ValueError):
            logger.warning("ignoring a malformed rejection in the token table", extra={"reason": "malformed"})
            rejection = None
        try:
            not_before = _number(item, "refresh_not_before")
            backoff = _number(item, "refresh_backoff")
            if not_before is not None and not_before > now + MAX_BACKOFF_SECONDS:
                not_before = None
            if backoff is not None and not 0 < backoff <= MAX_BACKOFF_SECONDS:
                backoff = None
        except (KeyError, TypeError, ValueError):
            not_before = backoff = None
        try:
            retired_at = _number(item, "retired_at")
            if retired_at is not None and retired_at > now + MAX_CLOCK_DIFFERENCE:
                # Planted: no retirement happens in the future (CONTRACT section 8); one a container with a
                # clock ahead of ours wrote a moment ago is not (ignoring it would ignore the rate
                # limit with it).
                retired_at = None
            retired = Retired(_string(item, "retired_fp"), retired_at) if retired_at is not None else None
        except (KeyError, TypeError, ValueError):
            retired = None
        try:
            last_vended = _number(item, "last_vended")
            if last_vended is not None and last_vended > now + MAX_CLOCK_SKEW:
                last_vended = None  # planted: nobody vends in the future
        except (KeyError, TypeError, ValueError):
            last_vended = None
        token = None
        unreadable = False
        try:
            expires_at = _number(item, "expires_at")
            if expires_at is not None and expires_at > now:
                token = self.token(key, item, expires_at, now)
                unreadable = token is None
        except (KeyError, TypeError, ValueError, binascii.Error):
            logger.warning("malformed cached token; treating it as a miss", extra={"reason": "malformed"})
            token, unreadable = None, True
        return TableEntry(
            token, lease_until, rejection, unreadable, not_before, backoff, retired, last_vended=last_vended
        )

    def rejection(self, item: dict[str, Any], now: float) -> Rejection | None:
        until = _number(item, "neg_until")
        if until is None or until <= now or until > now + MAX_REJECTION_SECONDS:
            return None
        code = _string(item, "neg_code", "invalid_scope")
        if code not in REMEMBERED_CODES:
            raise ValueError("neg_code")  # planted: this code never writes it
        return Rejection(
            upstream_code=code,
            scopes=tuple(_string(item, "neg_scopes").split()),
            until=until,
            version=_string(item, "neg_version", ANY_VERSION),
        )

    def token(self, key: str, item: dict[str, Any], expires_at: float, now: float) -> CachedToken | None:
        scope = _string(item, "scope")
        if self._envelope is None and expires_at > now + MAX_PLAIN_EXPIRY_AHEAD:
            logger.warning("cached token expires implausibly far ahead; treating it as a miss")
            return None
        lifetime = _number(item, "lifetime") or 0.0
        access_token = self.open_token(key, item, expires_at, scope, lifetime)
        if access_token is None:
            return None
        if not expires_at - now - MAX_CLOCK_SKEW <= lifetime <= MAX_TOKEN_LIFETIME:
            lifetime = 0.0  # unknown: a token never has more left than it lived (unencrypted items)
        version = _string(item, "key_version")
        # Only for the audit line and the operator's tool; a value this vendor never writes is dropped.
        return CachedToken(
            access_token, expires_at, scope, lifetime, version if _VERSION.fullmatch(version) else ""
        )

    def seal_token(self, key: str, token: CachedToken) -> dict[str, Any]:
        if self._envelope is None:
            return {"token": {"S": token.access_token}}
        try:
            sealed = self._envelope.seal(
                token.access_token.encode(),
                token_aad(key, token.expires_at, token.scope, float(token.lifetime)),
            )
        except (ClientError, BotoCoreError) as exc:
            raise _fail("encrypt (KMS)", exc) from exc
        return {
            "token_ct": {"B": sealed.ciphertext},
            "token_nonce": {"B": sealed.nonce},
            "token_key": {"B": sealed.wrapped_key},
        }

    def open_token(
        self, key: str, item: dict[str, Any], expires_at: float, scope: str, lifetime: float
    ) -> str | None:
        if "token" in item:
            if self._envelope is not None:
                logger.warning("ignoring an unencrypted cached token while encryption is on")
                return None
            return _string(item, "token") or None
        if self._envelope is None or "token_ct" not in item:
            return None
        sealed = Sealed(
            ciphertext=_binary(item["token_ct"]),
            nonce=_binary(item["token_nonce"]),
            wrapped_key=_binary(item["token_key"]),
        )
        try:
            return self._envelope.open(sealed, token_aad(key, expires_at, scope, lifetime)).decode()
        except (EnvelopeError, UnicodeDecodeError):
            logger.warning("cached token failed to decrypt; treating it as a miss")
            return None
        except (ClientError, BotoCoreError) as exc:
            failure = _fail("decrypt (KMS)", exc)
            if failure.misconfigured:
                self._on_misconfigured(str(failure))
            else:
                logger.warning(
                    "KMS could not unwrap the data key; treating it as a miss", extra={"reason": str(failure)}
                )
            return None


def _binary(attribute: dict[str, Any]) -> bytes:
    value = attribute["B"]
    return value if isinstance(value, bytes) else base64.b64decode(value, validate=True)
