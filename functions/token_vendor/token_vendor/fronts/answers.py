"""The result shape every caller receives (CONTRACT section 5)."""

from __future__ import annotations

from typing import Any

from token_vendor.kernel.cached_token import Vended


def token_result(vended: Vended, now: float) -> dict[str, Any]:
    token = vended.token
    return {
        "access_token": token.access_token,
        "token_type": "Bearer",
        # Time left now, not the upstream lifetime: a cached token has used some of it.
        "expires_in": max(0, int(token.expires_at - now)),
        "expires_at": int(token.expires_at),
        "scope": token.scope,
    }
