"""What the caches hold, and the cache key (CONTRACT section 8)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from token_vendor.scopes import Scopes

# A DynamoDB partition key is at most 2048 bytes; 20 scopes of 128 characters would not fit.
_MAX_PLAIN_KEY = 1024


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


def cache_key(tenant: str, account: str, scopes: Scopes) -> str:
    """One key per (tenant, account, normalised scope set); never shared with a superset."""
    scope_part = " ".join(scopes)
    key = f"{tenant}|{account}|{scope_part}"
    if len(key.encode()) > _MAX_PLAIN_KEY:
        # '"' can appear in no scope (RFC 6749 section 3.3), so no requested scope set can spell this key:
        # a request for the single scope "sha256:H" must not read the hashed set's token.
        key = f'{tenant}|{account}|"sha256" {hashlib.sha256(scope_part.encode()).hexdigest()}'
    return key
