"""A direct invoker's proof of identity: a signed, unsent ``sts:GetCallerIdentity`` (CONTRACT section 5).

A function cannot tell who invoked it, so a direct invoker that wants its own policy (CALLER_POLICY) signs
a GetCallerIdentity request with its credentials and hands it over unsent, the way HashiCorp Vault's AWS
IAM auth method works. The vendor checks the request's shape before any network call (``parse_proof``,
pure), then **rebuilds** it: the address is ``STS_ENDPOINT_URL`` (the proof's ``url`` must equal it, read
with urllib3's own parser, the one that sends), the body is the action, and the headers are the
allow-listed, signed ones, rebuilt from validated values. No byte the caller chose reaches the network
except signed header values (and the signature). STS verifies the signature and names the caller
(``ProofVerifier``); the signed ``X-Token-Vendor-Audience`` header binds the proof to this vendor, so a
proof made for another service cannot be replayed here. A verified proof is remembered by the digest of
the whole request STS verified, looked up only after the proof parses.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from token_vendor.adapters.http import bounded_http
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import AccessDenied, ConfigurationError, InvalidRequest, UpstreamUnavailable

METHOD = "POST"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
AUDIENCE_HEADER = "x-token-vendor-audience"
MAX_HEADERS = 16
MAX_PROOF_BYTES = 16 * 1024
MAX_SKEW_SECONDS = 300.0  # SigV4's own window; STS refuses older requests too
REMEMBER_SECONDS = 300.0  # a verified proof stands until 5 minutes after its X-Amz-Date
MAX_REMEMBERED = 1024
MAX_PARSED = 256  # reusable parses kept, each at most MAX_PROOF_BYTES of text: 4 MiB at worst
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 3.0
MAX_ANSWER_BYTES = 16 * 1024
_MEMBERS = frozenset({"method", "url", "headers", "body"})
# The only headers a proof may carry (lower case -> the spelling the vendor sends), each at most once.
_ALLOWED = {
    "authorization": "Authorization",
    "content-type": "Content-Type",
    "host": "Host",
    "x-amz-date": "X-Amz-Date",
    "x-amz-security-token": "X-Amz-Security-Token",
    AUDIENCE_HEADER: "X-Token-Vendor-Audience",
}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_VALUE = re.compile(r"[\x20-\x7e]*")  # printable ASCII: no CR, LF, NUL, other C0 or DEL
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Za-z0-9]{1,128})/(?P<day>[0-9]{8})/(?P<region>[a-z0-9-]{1,32})"
    r"/sts/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]{1,512}), ?Signature=(?P<signature>[0-9a-f]{64})"
)
_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
# What a proof's url may be written with at all: no userinfo '@', backslash, '%' escape, query, fragment,
# white space or non-ASCII, so the text means one thing to every parser before urllib3's reads it.
_URL_TEXT = re.compile(
    r"[A-Za-z]{4,5}://(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?"
)
_DOT_SEGMENT = re.compile(r"/\.{1,2}(/|$)")
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
_ARN = re.compile(r"arn:aws[a-z-]*:(sts|iam)::[0-9]{12}:[A-Za-z0-9+=,.@_/-]{1,512}")


@dataclass(frozen=True)
class Proof:
    """The request the vendor sends: ``STS_ENDPOINT_URL``, the action, and headers it rebuilt."""

    url: str  # STS_ENDPOINT_URL, never the caller's text
    headers: tuple[tuple[str, str], ...]
    signed_at: float  # epoch seconds of X-Amz-Date
    digest: str  # of the whole request STS verifies: the key a verified proof is remembered by

    def __repr__(self) -> str:  # the signature and session token are credentials for five minutes
        return f"Proof(url={self.url!r}, digest={self.digest[:12]!r})"


@dataclass(frozen=True)
class Endpoint:
    """``STS_ENDPOINT_URL`` as urllib3 reads it: where the request goes and the ``Host`` it carries."""

    url: str
    where: tuple[str, str, int, str]  # scheme, host, port (default written out), path
    host_header: str


def _where(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) as urllib3's parser (the one that sends) reads ``url``, or None if the
    text could mean something else to another parser or carries more than an address."""
    if not _URL_TEXT.fullmatch(url) or _DOT_SEGMENT.search(url):
        return None
    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError):
        return None
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https") or not parts.host or parts.auth or parts.query or parts.fragment:
        return None
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.host.lower(), port, parts.path or "/"


@functools.lru_cache(maxsize=8)
def endpoint(sts_url: str) -> Endpoint:
    """The configured endpoint, read once with the parser that sends (``ConfigurationError`` if that
    parser reads it as anything but a plain address)."""
    where = _where(sts_url)
    if where is None:
        raise ConfigurationError("setting STS_ENDPOINT_URL must be a plain http(s) address: host, port, path")
    scheme, host, port, _ = where
    host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
    return Endpoint(sts_url, where, host_header)


def _members(raw: object) -> tuple[object, object, Mapping[Any, Any], object]:
    if not isinstance(raw, Mapping):
        raise InvalidRequest("'identity' must be an object: a signed sts:GetCallerIdentity request")
    if not raw.keys() <= _MEMBERS:
        unknown = sorted(str(k)[:40] for k in raw if k not in _MEMBERS)
        raise InvalidRequest(
            f"'identity' has unknown member(s) {unknown[:5]}; allowed: method, url, headers, body"
        )
    method, url, headers, body = (raw.get(k) for k in ("method", "url", "headers", "body"))
    if not all(isinstance(v, str) for v in (method, url, body)) or not isinstance(headers, Mapping):
        raise InvalidRequest("'identity' needs method, url and body as strings and headers as an object")
    return method, url, headers, body


def _headers(headers: Mapping[Any, Any], url: str, body: str) -> dict[str, str]:
    """Lower-cased name -> value, each an allow-listed RFC 9110 token given once, each value one line of
    printable ASCII. Names the caller wrote are never echoed (a misplaced secret must not reach a log)."""
    if len(headers) > MAX_HEADERS:
        raise InvalidRequest(f"'identity' has more than {MAX_HEADERS} headers")
    size = len(url) + len(body)
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidRequest("'identity' header names and values must be strings")
        size += len(name) + len(value)
    if size > MAX_PROOF_BYTES:
        raise InvalidRequest(f"'identity' is larger than {MAX_PROOF_BYTES} bytes")
    lower: dict[str, str] = {}
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise InvalidRequest("'identity' has a header name that is not an RFC 9110 token")
        key = name.lower()
        if key not in _ALLOWED:
            raise InvalidRequest(f"'identity' may carry only the headers {', '.join(_ALLOWED.values())}")
        if key in lower:
            raise InvalidRequest(f"'identity' gives the {_ALLOWED[key]} header more than once")
        if not _VALUE.fullmatch(value):
            raise InvalidRequest(f"'identity' {_ALLOWED[key]} header must be printable ASCII on one line")
        lower[key] = value
    for required in ("host", "x-amz-date", "authorization", AUDIENCE_HEADER):
        if required not in lower:
            raise InvalidRequest(f"'identity' lacks the {_ALLOWED[required]} header")
    return lower


def _signed_headers(lower: Mapping[str, str]) -> str:
    """The SigV4 Authorization, rebuilt from its checked parts; it must sign exactly the headers sent."""
    match = _AUTHORIZATION.fullmatch(lower["authorization"])
    if not match:
        raise InvalidRequest("'identity' Authorization is not a SigV4 signature for sts")
    signed = match["signed"].split(";")
    for required in ("host", "x-amz-date", AUDIENCE_HEADER):
        if required not in signed:
            raise InvalidRequest(f"'identity' must sign the {_ALLOWED[required]} header (SignedHeaders)")
    carried = sorted(k for k in lower if k != "authorization")
    if signed != carried:
        raise InvalidRequest(
            "'identity' SignedHeaders must name, in order, exactly the headers it carries besides "
            "Authorization (an unsigned header is not sent)"
        )
    if match["day"] != lower["x-amz-date"][:8]:
        raise InvalidRequest("'identity' Authorization's credential date is not its X-Amz-Date's day")
    return (
        f"AWS4-HMAC-SHA256 Credential={match['key']}/{match['day']}/{match['region']}/sts/aws4_request, "
        f"SignedHeaders={match['signed']}, Signature={match['signature']}"
    )


def _signed_at(value: str, now: float) -> float:
    """Epoch seconds of a strict ``X-Amz-Date``, within 5 minutes of ``now`` either way."""
    malformed = "'identity' X-Amz-Date is not a date of the form 20261130T120000Z"
    match = _DATE.fullmatch(value)
    if not match:
        raise InvalidRequest(malformed)
    year, month, day, hour, minute, second = (int(field) for field in match.groups())
    try:  # the pattern admits 20261399T999999Z: the calendar decides
        signed_at = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(malformed) from exc
    _check_current(signed_at, now)
    return signed_at


def _check_current(signed_at: float, now: float) -> None:
    if abs(now - signed_at) > MAX_SKEW_SECONDS:
        raise AccessDenied(
            "the identity proof is more than 5 minutes from the vendor's clock; sign a new one"
        )


def parse_proof(raw: object, *, sts_url: str, audience: str, now: float) -> Proof:
    """Check everything that can be checked without a network call and rebuild the request to send.

    ``InvalidRequest`` says what is malformed; ``AccessDenied`` when the proof is well formed but not for
    this vendor or not current. Nothing here raises anything else, whatever ``raw`` holds."""
    method, url, headers, body = _members(raw)
    lower = _headers(headers, str(url), str(body))
    if method != METHOD:
        raise InvalidRequest("'identity' must be a POST (sts:GetCallerIdentity)")
    configured = endpoint(sts_url)
    if url != configured.url and _where(str(url)) != configured.where:
        raise InvalidRequest(f"'identity' must be addressed to {sts_url} (STS_ENDPOINT_URL), written plainly")
    if body != BODY:
        raise InvalidRequest(f"'identity' body must be exactly {BODY}")
    if lower["host"] != configured.host_header:
        raise InvalidRequest("'identity' Host header does not match its url")
    signed_at = _signed_at(lower["x-amz-date"], now)
    authorization = _signed_headers(lower)
    if lower[AUDIENCE_HEADER] != audience:
        raise AccessDenied(
            f"the identity proof was made for audience {lower[AUDIENCE_HEADER][:80]!r}, not this vendor "
            "(IDENTITY_AUDIENCE, by default the function's name)"
        )
    sent = {**lower, "authorization": authorization}
    rebuilt = tuple((_ALLOWED[k], sent[k]) for k in sorted(sent))
    return Proof(configured.url, rebuilt, signed_at, request_digest(configured.url, rebuilt))


def exact_text(raw: object, sts_url: str, audience: str) -> tuple[str, ...] | None:
    """Every string of a plainly shaped proof, in order, with the settings it is parsed against: two
    proofs with the same exact text parse the same way (but for the clock), so a parse can be reused for
    a proof seen before byte for byte. None for anything else (it is parsed, and refused, in full)."""
    if type(raw) is not dict or len(raw) != len(_MEMBERS):
        return None
    headers = raw.get("headers")
    if type(headers) is not dict or len(headers) > MAX_HEADERS:
        return None
    text = (
        sts_url,
        audience,
        raw.get("method"),
        raw.get("url"),
        raw.get("body"),
        *headers.keys(),
        *headers.values(),
    )
    return text if all(type(part) is str for part in text) else None


def request_digest(url: str, headers: tuple[tuple[str, str], ...]) -> str:
    """What a verified proof is remembered by: the SHA-256 of the whole request STS verified (method, url,
    every header sent, body), never the request itself. Values hold no line breaks, so the framing is
    unambiguous."""
    lines = [METHOD, url, *(f"{name.lower()}:{value}" for name, value in headers), "", BODY]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


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


Send = Callable[[Proof, Deadline], bounded_http.Answer]


class ProofVerifier:
    """Sends a parsed proof to STS and remembers a verified one by its digest (so a client that reuses a
    proof costs one STS call), never its content. ``send`` replaces the HTTP call (tests)."""

    def __init__(
        self,
        *,
        pool: Any = None,
        clock: Callable[[], float],
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        send: Send | None = None,
    ) -> None:
        self._pool = pool if pool is not None or send is not None else bounded_http.endpoint_pool()
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._send = send or self._post
        self._verified: dict[str, tuple[str, float]] = {}  # digest -> (arn, until)
        self._parsed: dict[tuple[str, ...], Proof] = {}  # a proof's exact text -> its parse (no ARN)
        self._lock = threading.Lock()

    def identify(self, raw: object, *, sts_url: str, audience: str, deadline: Deadline) -> str:
        """The ARN of the principal that signed ``raw``: parsed first (on this verifier's clock), then
        remembered or sent. Nothing is looked up, and nothing sent, for a proof that does not parse."""
        now = self._clock()
        text = exact_text(raw, sts_url, audience)
        with self._lock:
            proof = self._parsed.get(text) if text is not None else None
        if proof is None:
            proof = parse_proof(raw, sts_url=sts_url, audience=audience, now=now)
            if text is not None:
                with self._lock:
                    if len(self._parsed) >= MAX_PARSED:
                        self._parsed.clear()
                    self._parsed[text] = proof
        else:  # the same text parsed before: only the clock can have changed its verdict
            _check_current(proof.signed_at, now)
        return self.verify(proof, deadline)

    def remembered(self, proof: Proof) -> str | None:
        now = self._clock()
        with self._lock:
            entry = self._verified.get(proof.digest)
        return entry[0] if entry is not None and entry[1] > now else None

    def verify(self, proof: Proof, deadline: Deadline) -> str:
        """The caller's ARN. ``AccessDenied`` if STS refuses the signature; ``UpstreamUnavailable`` if STS
        cannot answer within the deadline."""
        known = self.remembered(proof)
        if known is not None:
            return known
        try:
            answer = self._send(proof, deadline)
        except bounded_http.NoAnswer as exc:
            raise UpstreamUnavailable(f"STS could not verify the identity proof now: {exc.reason}") from exc
        if answer.status in (400, 401, 403):
            raise AccessDenied("STS refused the identity proof's signature (sign it with valid credentials)")
        if answer.status != 200 or len(answer.body) > MAX_ANSWER_BYTES:
            raise UpstreamUnavailable(f"STS answered HTTP {answer.status} to the identity proof")
        arn = caller_arn(answer.body)
        self._remember(proof, arn)
        return arn

    def _post(self, proof: Proof, deadline: Deadline) -> bounded_http.Answer:
        """The rebuilt request: the configured URL, the action, the headers ``parse_proof`` rebuilt."""
        return bounded_http.post(
            self._pool,
            proof.url,
            BODY.encode(),
            dict(proof.headers),
            deadline,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            max_body=MAX_ANSWER_BYTES,
        )

    def _remember(self, proof: Proof, arn: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._verified) >= MAX_REMEMBERED:
                self._verified = {d: e for d, e in self._verified.items() if e[1] > now}
                while len(self._verified) >= MAX_REMEMBERED:
                    self._verified.pop(next(iter(self._verified)))
            self._verified[proof.digest] = (arn, proof.signed_at + REMEMBER_SECONDS)
