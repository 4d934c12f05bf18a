"""What the caches hold (CONTRACT section 8); the cache key is the table item's (adapters/aws/item_format)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float  # epoch seconds
    scope: str
    lifetime: float = 0.0  # expires_in as AIC issued it; 0 when unknown
    key_version: str = ""  # the secret version whose key minted it (audit line, cache status); "" unknown

    def seconds_left(self, now: float) -> float:
        return self.expires_at - now

    def __repr__(self) -> str:
        return f"CachedToken(fingerprint={fingerprint(self.access_token)!r}, expires_at={self.expires_at})"


def fingerprint(access_token: str) -> str:
    """A short, one-way handle for logs: correlates a token without revealing it."""
    return hashlib.sha256(access_token.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Vended:
    """What a vend hands the front: the token, where it came from, and what the vend retired."""

    token: CachedToken
    tier: str  # memory | table | minted | stale
    jti: str | None = None
    retired: str | None = None  # the fingerprint this vend retired (CONTRACT section 5)
    retire_rate_limited: bool = False  # a report within MIN_REFRESH_INTERVAL_SECONDS of the last retirement
