"""Who may have which scope over HTTP (CONTRACT section 6). Pure; deny by default."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from token_vendor.kernel.scopes import Scopes

_ASSUMED_ROLE = re.compile(
    r"arn:(?P<partition>[^:]+):sts::(?P<account>[0-9]{12}):assumed-role/(?P<role>[^/]+)/.+"
)
_ROLE_WITH_PATH = re.compile(
    r"arn:(?P<partition>[^:]+):iam::(?P<account>[0-9]{12}):role/(?:.*/)?(?P<role>[^/]+)"
)


def normalise_principal(arn: str) -> str:
    """An STS session is matched as its role: ``...:sts::A:assumed-role/R/S`` -> ``...:iam::A:role/R``.

    The role path is dropped (it does not appear in session ARNs, so a policy could not match on it).
    """
    match = _ASSUMED_ROLE.fullmatch(arn) or _ROLE_WITH_PATH.fullmatch(arn)
    if match:
        return f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"
    return arn


@lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern[str]:
    # Only '*' (any run) and '?' (one character) are special; everything else, '[' included, is literal.
    parts = ("." + "*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(pattern: str, value: str) -> bool:
    return _glob(pattern).fullmatch(value) is not None


@dataclass(frozen=True)
class CallerPolicy:
    entries: Mapping[str, tuple[str, ...]]

    def _entries_for(self, caller_arn: str) -> list[tuple[str, ...]]:
        principal = normalise_principal(caller_arn)
        return [
            scope_globs
            for arn_glob, scope_globs in self.entries.items()
            if glob_matches(arn_glob, principal) or glob_matches(arn_glob, caller_arn)
        ]

    def names(self, caller_arn: str) -> bool:
        """True if any entry matches the caller (whatever scopes it grants)."""
        return bool(self._entries_for(caller_arn))

    def allows(self, caller_arn: str, scopes: Scopes) -> bool:
        """True if one entry matching the caller covers every requested scope."""
        return any(scopes_match(globs, scopes) for globs in self._entries_for(caller_arn))


def scopes_match(globs: tuple[str, ...], scopes: Scopes) -> bool:
    """Every scope is matched by at least one glob."""
    return all(any(glob_matches(g, scope) for g in globs) for scope in scopes)
