"""A SigV4 *verifier* that follows the specification, for the local API front.

botocore's signer is a client: it assumes the URL it is given is already encoded, so as a verifier it does
not normalise a raw query such as ``?scope=fr:idm:*`` the way the specification (and API Gateway) does, and
it trusts a client-sent ``x-amz-content-sha256``. This module builds the canonical request from what
arrived on the wire, as the specification describes it (AWS General Reference, "Create a canonical request
for Signature Version 4"):

- canonical URI: the path with dot segments removed and repeated slashes collapsed (RFC 3986 section
  5.2.4), each segment URI-encoded once more (services other than S3 encode twice: the client encoded it
  once on the wire);
- canonical query: every name and value decoded, then encoded with the RFC 3986 unreserved set
  (``A-Z a-z 0-9 - _ . ~``; a space is ``%20``, a ``+`` is a literal plus), sorted by name, then value;
- canonical headers: names lower-cased, values trimmed with inner runs of spaces collapsed, repeated
  headers joined with ``,`` in arrival order; only the signed ones, sorted;
- payload: the SHA-256 of the body actually received (a mismatching ``x-amz-content-sha256`` is refused).

Checked against the public SigV4 test-suite vectors in ``tests/unit/test_sigv4_verifier.py``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = "-_.~"  # with the ASCII letters and digits, which quote() never encodes


def _encode(data: bytes | str) -> str:
    return quote(data, safe=_UNRESERVED)


def _remove_dot_segments(segments: list[str]) -> list[str]:
    out: list[str] = []
    for segment in segments:
        if segment == ".":
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return out


def canonical_uri(path: str) -> str:
    """The wire path, normalised and encoded once more (each segment; '/' separates)."""
    if not path:
        return "/"
    trailing = path.endswith("/") and path != "/"
    segments = _remove_dot_segments([s for s in path.split("/") if s])
    uri = "/" + "/".join(_encode(s) for s in segments)
    if trailing and uri != "/":
        uri += "/"
    return uri


def canonical_query(query: str) -> str:
    """Decode each name and value, re-encode with the unreserved set, sort by name then value."""
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_encode(unquote_to_bytes(name)), _encode(unquote_to_bytes(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _trim(value: str) -> str:
    return " ".join(value.strip().split())


def canonical_headers(headers: Iterable[tuple[str, str]], signed: list[str]) -> str:
    joined: dict[str, list[str]] = {}
    for name, value in headers:
        joined.setdefault(name.lower().strip(), []).append(_trim(value))
    return "".join(f"{name}:{','.join(joined.get(name, []))}\n" for name in signed)


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    signed: list[str],
    payload_hash: str,
) -> str:
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        ]
    )


def string_to_sign(stamp: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])


def signature(secret_key: str, date: str, region: str, service: str, to_sign: str) -> str:
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
