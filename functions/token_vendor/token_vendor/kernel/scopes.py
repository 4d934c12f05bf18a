"""Scope rules (CONTRACT section 5): pure functions, no I/O.

A scope is an RFC 6749 section 3.3 scope-token: one or more of %x21 / %x23-5B / %x5D-7E (printable ASCII
without space, ``"`` and ``\\``). The normalised form, de-duplicated and sorted, is the cache key, so every
spelling of one scope set shares one token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from token_vendor.kernel.errors import InvalidRequest, InvalidScope

MAX_SCOPE_LENGTH = 128
MAX_SCOPES = 20
# Bounds the work done on hostile input before the per-scope checks run.
MAX_RAW_SCOPE_CHARS = MAX_SCOPES * (MAX_SCOPE_LENGTH + 1) * 4

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")

Scopes = tuple[str, ...]


def describe_char(char: str) -> str:
    """Name a character without echoing it raw (it may be a control character)."""
    return f"U+{ord(char):04X}"


def _check_scope(scope: str, position: int) -> None:
    if len(scope) > MAX_SCOPE_LENGTH:
        raise InvalidScope(
            f"scope #{position} is {len(scope)} characters long; at most {MAX_SCOPE_LENGTH} are allowed"
        )
    if "," in scope:
        # RFC 6749 allows a comma in a scope-token, but AIC's scopes have none, and AIC itself lists
        # scopes with commas: "a,b" is two scopes written the wrong way, refused before any exchange.
        raise InvalidScope(
            f"scope #{position} contains a comma; separate scopes with spaces, e.g. 'fr:idm:* fr:am:*'"
        )
    if not _SCOPE_TOKEN.fullmatch(scope):
        bad = next(c for c in scope if not _SCOPE_TOKEN.fullmatch(c))
        raise InvalidScope(
            f"scope #{position} contains {describe_char(bad)}; a scope is printable ASCII "
            "without space, '\"' or '\\' (RFC 6749 section 3.3)"
        )


def normalise_scopes(raw: object) -> Scopes:
    """Turn a space-separated string or a list of strings into the sorted, de-duplicated scope set."""
    if isinstance(raw, str):
        if len(raw) > MAX_RAW_SCOPE_CHARS:
            raise InvalidScope(f"scope is {len(raw)} characters long; far more than {MAX_SCOPES} scopes")
        parts: list[str] = raw.split()
    elif isinstance(raw, list):
        if len(raw) > MAX_SCOPES * 4:
            raise InvalidScope(f"{len(raw)} scopes requested; at most {MAX_SCOPES} are allowed")
        parts = []
        for index, item in enumerate(raw, start=1):
            if not isinstance(item, str):
                raise InvalidRequest(f"scopes[{index - 1}] must be a string, not {_json_type(item)}")
            if len(item) > MAX_RAW_SCOPE_CHARS:
                raise InvalidScope(f"scope #{index} is {len(item)} characters long")
            parts.extend(item.split())
    else:
        raise InvalidRequest(f"scope must be a string or a list of strings, not {_json_type(raw)}")
    if not parts:
        raise InvalidScope("no scope requested; ask for at least one, e.g. 'fr:idm:*'")
    for position, scope in enumerate(parts, start=1):
        _check_scope(scope, position)
    unique = tuple(sorted(set(parts)))
    if len(unique) > MAX_SCOPES:
        raise InvalidScope(f"{len(unique)} scopes requested; at most {MAX_SCOPES} are allowed")
    return unique


def check_allowed(scopes: Iterable[str], allowed: frozenset[str] | None) -> None:
    """Refuse scopes this deployment may not mint at all (``ALLOWED_SCOPES``); None means any."""
    if allowed is None:
        return
    outside = sorted(set(scopes) - allowed)
    if outside:
        raise InvalidScope(f"not allowed by this deployment: {' '.join(outside)}")


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return names.get(type(value), type(value).__name__)
