"""Events -> a validated ``VendRequest`` (CONTRACT section 5). Pure; runs before any I/O."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from token_vendor.kernel.errors import InvalidRequest
from token_vendor.kernel.scopes import Scopes, normalise_scopes
from token_vendor.kernel.settings import MAX_VALIDITY_SECONDS

DIRECT_CALLER = "direct"
MAX_BODY_BYTES = 16 * 1024
_MEMBERS = frozenset({"scope", "scopes", "minValiditySeconds", "rejected"})
_FINGERPRINT = re.compile(r"[0-9a-f]{12}")
_ASCII_SECONDS = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class VendRequest:
    scopes: Scopes
    min_validity: int | None
    caller: str  # a proven IAM principal ARN (HTTP, identity proof), DIRECT_CALLER for unproven invokers
    rejected: str | None = None  # fingerprint of a token AIC refused (CONTRACT section 5)
    identified: str = "direct"  # how: api-gateway | function-url | sts-proof | direct (CONTRACT section 6)


def parse_rejected(value: object) -> str | None:
    """``rejected``: the first 12 lowercase hex characters of SHA-256 of the refused access token."""
    if value is None:
        return None
    if not isinstance(value, str) or not _FINGERPRINT.fullmatch(value):
        raise InvalidRequest(
            "rejected must be a token fingerprint: the first 12 lowercase hex characters of SHA-256 of "
            "the access token AIC refused"
        )
    return value


def parse_min_validity(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(
            f"minValiditySeconds must be a whole number of seconds from 0 to {MAX_VALIDITY_SECONDS}"
        )
    if not 0 <= value <= MAX_VALIDITY_SECONDS:
        raise InvalidRequest(
            f"minValiditySeconds is {value}; it must be from 0 to {MAX_VALIDITY_SECONDS} "
            "(AIC tokens live 899 seconds)"
        )
    return value


def parse_document(document: object, caller: str) -> VendRequest:
    """The direct-invocation / Step Functions event, also the body of ``POST /token``."""
    if not isinstance(document, Mapping):
        raise InvalidRequest('the request must be a JSON object such as {"scope": "fr:idm:*"}')
    unknown = sorted(str(k) for k in document if k not in _MEMBERS)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise InvalidRequest(
            f"unknown member(s) {shown}; allowed: scope, scopes, minValiditySeconds, rejected"
        )
    if "scope" in document and "scopes" in document:
        raise InvalidRequest("give either 'scope' or 'scopes', not both")
    if "scope" in document:
        if not isinstance(document["scope"], str):
            raise InvalidRequest("'scope' must be a string of space-separated scopes")
        scopes = normalise_scopes(document["scope"])
    elif "scopes" in document:
        if not isinstance(document["scopes"], list):
            raise InvalidRequest("'scopes' must be a list of strings")
        scopes = normalise_scopes(document["scopes"])
    else:
        raise InvalidRequest("'scope' (or 'scopes') is required")
    return VendRequest(
        scopes,
        parse_min_validity(document.get("minValiditySeconds")),
        caller,
        parse_rejected(document.get("rejected")),
    )


def parse_json_body(body: str | None, is_base64: bool) -> Any:
    if body is None or body == "":
        raise InvalidRequest('POST /token needs a JSON body such as {"scope": "fr:idm:*"}')
    if len(body) > MAX_BODY_BYTES * 2:
        raise InvalidRequest(f"body is larger than {MAX_BODY_BYTES} bytes")
    raw: bytes | str = body
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("body is marked base64 but is not valid base64") from exc
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("body is not valid JSON") from exc
    except RecursionError as exc:  # e.g. 14 KB of '[': valid-looking, but nested past the parser's limit
        raise InvalidRequest("body nests too deeply to be a token request") from exc


def parse_query(params: Mapping[str, list[str]], caller: str) -> VendRequest:
    """``GET /token?scope=a&scope=b`` or ``?scope=a%20b``, optionally ``&minValiditySeconds=600``."""
    unknown = sorted(k for k in params if k not in ("scope", "minValiditySeconds", "rejected"))
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise InvalidRequest(
            f"unknown query parameter(s) {shown}; allowed: scope, minValiditySeconds, rejected"
        )
    scope_values = params.get("scope") or []
    if not scope_values:
        raise InvalidRequest("query parameter 'scope' is required, e.g. /token?scope=fr:idm:*")
    validity = params.get("minValiditySeconds") or []
    if len(validity) > 1:
        raise InvalidRequest("give minValiditySeconds once")
    min_validity: object = None
    if validity:
        text = validity[0].strip()
        # ASCII digits only: '²'.isdigit() is True, and int('²') raises.
        min_validity = int(text) if _ASCII_SECONDS.fullmatch(text) else text
    rejected = params.get("rejected") or []
    if len(rejected) > 1:
        raise InvalidRequest("give rejected once")
    return VendRequest(
        normalise_scopes(list(scope_values)),
        parse_min_validity(min_validity),
        caller,
        parse_rejected(rejected[0] if rejected else None),
    )
