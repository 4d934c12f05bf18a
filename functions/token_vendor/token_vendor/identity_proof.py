"""A direct invoker's proof of identity: a signed, unsent ``sts:GetCallerIdentity`` (CONTRACT section 5).

A function cannot tell who invoked it, so a direct invoker that wants its own policy (CALLER_POLICY) signs
a GetCallerIdentity request with its credentials and hands it over unsent, the way HashiCorp Vault's AWS
IAM auth method works. The vendor checks the request's shape before any network call (``parse_proof``,
pure), sends exactly that request to STS, and takes the caller's ARN from STS's answer
(``ProofVerifier``). STS verifies the signature; the signed ``X-Token-Vendor-Audience`` header binds the
proof to this vendor, so a proof made for another service cannot be replayed here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from token_vendor import bounded_http
from token_vendor.deadline import Deadline
from token_vendor.errors import AccessDenied, InvalidRequest, UpstreamUnavailable

BODY = "Action=GetCallerIdentity&Version=2011-06-15"
AUDIENCE_HEADER = "x-token-vendor-audience"
MAX_HEADERS = 16
MAX_PROOF_BYTES = 16 * 1024
MAX_SKEW_SECONDS = 300.0  # SigV4's own window; STS refuses older requests too
REMEMBER_SECONDS = 300.0  # a verified proof stands until 5 minutes after its X-Amz-Date
MAX_REMEMBERED = 1024
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 3.0
MAX_ANSWER_BYTES = 16 * 1024
_MEMBERS = frozenset({"method", "url", "headers", "body"})
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[A-Za-z0-9]{1,128}/[0-9]{8}/[a-z0-9-]{1,32}/sts/aws4_request,\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9;-]{1,512}),\s*Signature=[0-9a-f]{64}"
)
_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
_ARN = re.compile(r"arn:aws[a-z-]*:(sts|iam)::[0-9]{12}:[A-Za-z0-9+=,.@_/-]{1,512}")


@dataclass(frozen=True)
class Proof:
    url: str
    headers: tuple[tuple[str, str], ...]
    signed_at: float  # epoch seconds of X-Amz-Date
    digest: str  # of its signature: the key a verified proof is remembered by

    def __repr__(self) -> str:  # the signature and session token are credentials for five minutes
        return f"Proof(url={self.url!r}, digest={self.digest[:12]!r})"


def _same_endpoint(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (
        pa.scheme == pb.scheme
        and pa.hostname == pb.hostname
        and (pa.port or None) == (pb.port or None)
        and (pa.path or "/") == (pb.path or "/")
        and not pa.query
        and not pa.fragment
    )


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def parse_proof(raw: object, *, sts_url: str, audience: str, now: float) -> Proof:
    """Check everything that can be checked without a network call; ``InvalidRequest`` says what is wrong,
    ``AccessDenied`` when the proof is well formed but not for this vendor or not current."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("'identity' must be an object: a signed sts:GetCallerIdentity request")
    unknown = sorted(str(k)[:40] for k in raw if k not in _MEMBERS)
    if unknown:
        raise InvalidRequest(
            f"'identity' has unknown member(s) {unknown[:5]}; allowed: method, url, headers, body"
        )
    method, url, headers, body = (raw.get(k) for k in ("method", "url", "headers", "body"))
    if not all(isinstance(v, str) for v in (method, url, body)) or not isinstance(headers, Mapping):
        raise InvalidRequest("'identity' needs method, url and body as strings and headers as an object")
    if len(headers) > MAX_HEADERS:
        raise InvalidRequest(f"'identity' has more than {MAX_HEADERS} headers")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise InvalidRequest("'identity' header names and values must be strings")
    size = len(str(url)) + len(str(body)) + sum(len(k) + len(v) for k, v in headers.items())
    if size > MAX_PROOF_BYTES:
        raise InvalidRequest(f"'identity' is larger than {MAX_PROOF_BYTES} bytes")
    if any(not (k + v).isascii() or any(c in k + v for c in "\r\n\x00") for k, v in headers.items()):
        raise InvalidRequest("'identity' headers must be printable ASCII on one line")
    if method != "POST":
        raise InvalidRequest("'identity' must be a POST (sts:GetCallerIdentity)")
    if not _same_endpoint(str(url), sts_url):
        raise InvalidRequest(f"'identity' must be addressed to {sts_url} (STS_ENDPOINT_URL)")
    if body != BODY:
        raise InvalidRequest(f"'identity' body must be exactly {BODY}")
    lower = {k.lower(): v for k, v in headers.items()}
    for required in ("host", "x-amz-date", "authorization", AUDIENCE_HEADER):
        if required not in lower:
            raise InvalidRequest(f"'identity' lacks the {required} header")
    if lower["host"] != _host_of(sts_url):
        raise InvalidRequest("'identity' Host header does not match its url")
    match = _AUTHORIZATION.fullmatch(lower["authorization"].strip())
    if not match:
        raise InvalidRequest("'identity' Authorization is not a SigV4 signature for sts")
    signed = match["signed"].split(";")
    for required in ("host", "x-amz-date", AUDIENCE_HEADER):
        if required not in signed:
            raise InvalidRequest(f"'identity' must sign the {required} header (SignedHeaders)")
    if not _DATE.fullmatch(lower["x-amz-date"]):
        raise InvalidRequest("'identity' X-Amz-Date is not of the form 20261130T120000Z")
    signed_at = dt.datetime.strptime(lower["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
    if abs(now - signed_at) > MAX_SKEW_SECONDS:
        raise AccessDenied(
            "the identity proof is more than 5 minutes from the vendor's clock; sign a new one"
        )
    if lower[AUDIENCE_HEADER] != audience:
        raise AccessDenied(
            f"the identity proof was made for audience {lower[AUDIENCE_HEADER][:80]!r}, not this vendor "
            "(IDENTITY_AUDIENCE, by default the function's name)"
        )
    authorization = next(v for k, v in headers.items() if k.lower() == "authorization")
    return Proof(str(url), tuple(headers.items()), signed_at, signature_digest(authorization))


def signature_digest(authorization: str) -> str:
    """What a verified proof is remembered by: a digest of its Authorization header (never the header)."""
    return hashlib.sha256(authorization.strip().encode()).hexdigest()


def caller_arn(body: bytes) -> str:
    """The ``Arn`` of a GetCallerIdentity answer (STS's XML), or ``UpstreamUnavailable``."""
    import xml.etree.ElementTree as ET  # only when a proof is verified: the cold start never pays

    try:
        root = ET.fromstring(body)  # noqa: S314 - bounded size, from the configured STS endpoint
    except ET.ParseError as exc:
        raise UpstreamUnavailable("STS answered 200 with something that is not its XML") from exc
    node = root.find(f"{_STS_NS}GetCallerIdentityResult/{_STS_NS}Arn")
    arn = (node.text or "").strip() if node is not None else ""
    if not _ARN.fullmatch(arn):
        raise UpstreamUnavailable("STS answered 200 without a caller ARN")
    return arn


class ProofVerifier:
    """Sends a parsed proof to STS and remembers a verified one by its digest (so a client that reuses a
    proof costs one STS call), never its content."""

    def __init__(
        self,
        *,
        pool: Any = None,
        clock: Callable[[], float],
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._pool = pool or bounded_http.endpoint_pool()
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._verified: dict[str, tuple[str, float]] = {}  # digest -> (arn, until)
        self._lock = threading.Lock()

    def remembered(self, proof: Proof) -> str | None:
        return self._lookup(proof.digest)

    def remembered_raw(self, raw: object) -> str | None:
        """The ARN of a proof verified before, from its signature alone (no parsing: the warm path).

        The SigV4 signature is a MAC over everything STS checked (host, date, audience, body), so the same
        Authorization is the same proof: a caller that reuses its proof skips the parse and the call.
        """
        if not isinstance(raw, Mapping):
            return None
        headers = raw.get("headers")
        if not isinstance(headers, Mapping):
            return None
        authorization = headers.get("Authorization")
        if not isinstance(authorization, str):
            return None
        return self._lookup(signature_digest(authorization))

    def _lookup(self, digest: str) -> str | None:
        now = self._clock()
        with self._lock:
            entry = self._verified.get(digest)
        return entry[0] if entry is not None and entry[1] > now else None

    def verify(self, proof: Proof, deadline: Deadline) -> str:
        """The caller's ARN. ``AccessDenied`` if STS refuses the signature; ``UpstreamUnavailable`` if STS
        cannot answer within the deadline."""
        known = self.remembered(proof)
        if known is not None:
            return known
        try:
            answer = bounded_http.post(
                self._pool,
                proof.url,
                BODY.encode(),
                dict(proof.headers),
                deadline,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                max_body=MAX_ANSWER_BYTES,
            )
        except bounded_http.NoAnswer as exc:
            raise UpstreamUnavailable(f"STS could not verify the identity proof now: {exc.reason}") from exc
        if answer.status in (400, 401, 403):
            raise AccessDenied("STS refused the identity proof's signature (sign it with valid credentials)")
        if answer.status != 200 or len(answer.body) > MAX_ANSWER_BYTES:
            raise UpstreamUnavailable(f"STS answered HTTP {answer.status} to the identity proof")
        arn = caller_arn(answer.body)
        self._remember(proof, arn)
        return arn

    def _remember(self, proof: Proof, arn: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._verified) >= MAX_REMEMBERED:
                self._verified = {d: e for d, e in self._verified.items() if e[1] > now}
                while len(self._verified) >= MAX_REMEMBERED:
                    self._verified.pop(next(iter(self._verified)))
            self._verified[proof.digest] = (arn, proof.signed_at + REMEMBER_SECONDS)
