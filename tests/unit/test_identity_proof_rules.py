"""Issue 30: the identity proof is checked with the parser that sends, rebuilt by the vendor, and every
malformed proof is InvalidRequest or AccessDenied (never InternalError), before any network call.

The proofs here carry a well-formed but made-up signature: the parser never checks signatures (STS does),
so a fixed one keeps these tests pure. ``ProofVerifier`` gets a counting ``send`` in place of HTTP."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from token_vendor.adapters.aws.identity_proof import BODY, Proof, ProofVerifier, parse_proof
from token_vendor.adapters.http.bounded_http import Answer
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import AccessDenied, ConfigurationError, InvalidRequest

STS = "https://sts.us-east-1.amazonaws.com/"
HOST = "sts.us-east-1.amazonaws.com"
NOW = 1_796_040_000.0  # 2026-11-30T12:00:00Z
DATE = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(NOW))
SIGNATURE = "5e" * 32
ARN = "arn:aws:sts::123456789012:assumed-role/reporting/session"


def authorization(signed: str = "host;x-amz-date;x-token-vendor-audience", day: str = DATE[:8]) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{day}/us-east-1/sts/aws4_request, "
        f"SignedHeaders={signed}, Signature={SIGNATURE}"
    )


def proof(url: str = STS, **headers: str) -> dict[str, Any]:
    base = {
        "Host": HOST,
        "X-Amz-Date": DATE,
        "X-Token-Vendor-Audience": "token-vendor",
        "Authorization": authorization(),
    }
    return {"method": "POST", "url": url, "headers": {**base, **headers}, "body": BODY}


def parse(raw: object, now: float = NOW) -> Proof:
    return parse_proof(raw, sts_url=STS, audience="token-vendor", now=now)


# -- the address is the vendor's, read by urllib3 ----------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "https://EVIL\\@sts.us-east-1.amazonaws.com/",  # urlsplit: host sts…; urllib3 (which sends): EVIL
        "https://evil.example\\@sts.us-east-1.amazonaws.com/",
        "https://EVIL\\\\@sts.us-east-1.amazonaws.com/",
        "https://127.0.0.1:8443\\@sts.us-east-1.amazonaws.com/",
        "https://EVIL%5C@sts.us-east-1.amazonaws.com/",
        "https://user@sts.us-east-1.amazonaws.com/",
        "https://user:pw@sts.us-east-1.amazonaws.com/",
        "https://s%74s.us-east-1.amazonaws.com/",
        "https://sts.us-east-1.amazonaws.com/#fragment",
        "https://sts.us-east-1.amazonaws.com/?Action=AssumeRole",
        "https://sts.us-east-1.amazonaws.com/other",
        "https://sts.us-east-1.amazonaws.com/x/../",
        "https://sts.us-east-1.amazonaws.com./",
        "https://sts.us-east-1.amazonaws.com:8443/",
        "http://sts.us-east-1.amazonaws.com/",
        " https://sts.us-east-1.amazonaws.com/",
        "https://sts.us-east-1.amazonaws.com/\t",
        "https://st\u0455.us-east-1.amazonaws.com/",
        "https://EVIL\t@sts.us-east-1.amazonaws.com/",
    ],
)
def test_a_url_that_is_not_sts_endpoint_url_to_the_sending_parser_is_refused(url: str) -> None:
    """The review's attack: a backslash makes the checking and the sending parser disagree on the host."""
    with pytest.raises(InvalidRequest, match="STS_ENDPOINT_URL"):
        parse(proof(url))


@pytest.mark.parametrize(
    "url", [STS, "https://sts.us-east-1.amazonaws.com", "HTTPS://STS.us-east-1.amazonaws.com:443/"]
)
def test_the_same_address_written_differently_is_accepted_and_the_configured_url_is_what_is_sent(
    url: str,
) -> None:
    assert parse(proof(url)).url == STS


def test_the_request_sent_is_rebuilt_from_checked_values_only() -> None:
    raw = proof(
        **{
            "Authorization": authorization(
                "content-type;host;x-amz-date;x-amz-security-token;x-token-vendor-audience"
            ).replace(", ", ",", 1),  # SigV4 allows no space after the comma
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Amz-Security-Token": "FwoGZXIvYXdzEXAMPLE",
        }
    )
    sent: list[tuple[str, dict[str, str]]] = []

    def send(request: Proof, deadline: Deadline) -> Answer:
        sent.append((request.url, dict(request.headers)))
        return Answer(200, {}, _identity_xml(ARN))

    verifier = ProofVerifier(clock=lambda: NOW, send=send)
    verifier.identify(raw, sts_url=STS, audience="token-vendor", deadline=Deadline.after(5, time.monotonic))

    assert sent == [
        (
            STS,
            {
                "Authorization": authorization(
                    "content-type;host;x-amz-date;x-amz-security-token;x-token-vendor-audience"
                ),
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "Host": HOST,
                "X-Amz-Date": DATE,
                "X-Amz-Security-Token": "FwoGZXIvYXdzEXAMPLE",
                "X-Token-Vendor-Audience": "token-vendor",
            },
        )
    ]


# -- headers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["", "X-A:b", " X", "X ", "Host ", "X\r\nInjected", "X-Extra", "User-Agent", "Content-Length"]
)
def test_a_header_that_is_not_an_allowed_token_is_refused(name: str) -> None:
    with pytest.raises(InvalidRequest, match="header"):
        parse(proof(**{name: "x"}))


@pytest.mark.parametrize("value", ["a\tb", "a\x7fb", "a\x01b", "a\rb", "a\nb", "a\x00b", "caf\u00e9"])
def test_a_header_value_with_a_control_character_is_refused(value: str) -> None:
    raw = proof(Authorization=authorization("host;x-amz-date;x-amz-security-token;x-token-vendor-audience"))
    raw["headers"]["X-Amz-Security-Token"] = value
    with pytest.raises(InvalidRequest, match="printable ASCII"):
        parse(raw)


def test_a_header_given_twice_in_different_cases_is_refused() -> None:
    raw = proof()
    raw["headers"]["x-amz-date"] = DATE

    with pytest.raises(InvalidRequest, match="more than once"):
        parse(raw)


def test_a_header_the_signature_does_not_cover_is_refused_not_sent() -> None:
    with pytest.raises(InvalidRequest, match="SignedHeaders"):
        parse(proof(**{"Content-Type": "text/plain"}))  # carried, not in SignedHeaders


def test_a_signed_header_the_proof_does_not_carry_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="SignedHeaders"):
        parse(proof(Authorization=authorization("content-length;host;x-amz-date;x-token-vendor-audience")))


# -- dates ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "date", ["20261399T999999Z", "20260230T120000Z", "00000101T000000Z", "20261130T246000Z"]
)
def test_a_date_of_the_right_shape_that_is_no_date_is_invalid_request(date: str) -> None:
    raw = proof(**{"X-Amz-Date": date, "Authorization": authorization(day=date[:8])})
    with pytest.raises(InvalidRequest, match="X-Amz-Date"):
        parse(raw)


@pytest.mark.parametrize(
    "offset", [-301.0, 301.0, -86_400.0, 86_400.0], ids=["past", "future", "day-old", "day-ahead"]
)
def test_a_proof_more_than_5_minutes_from_the_vendors_clock_either_way_is_refused(offset: float) -> None:
    """``now`` is the vendor's clock: a proof dated 301 s ahead of it is as refused as one 301 s old."""
    with pytest.raises(AccessDenied, match="more than 5 minutes"):
        parse(proof(), now=NOW - offset)


@pytest.mark.parametrize("offset", [-299.0, 0.0, 299.0])
def test_a_proof_within_5_minutes_either_way_parses(offset: float) -> None:
    assert parse(proof(), now=NOW - offset).signed_at == NOW


# -- what a verified proof is remembered by --------------------------------------------------------------
def _identity_xml(arn: str) -> bytes:
    ns = "https://sts.amazonaws.com/doc/2011-06-15/"
    return (
        f'<GetCallerIdentityResponse xmlns="{ns}"><GetCallerIdentityResult><Arn>{arn}</Arn>'
        "</GetCallerIdentityResult></GetCallerIdentityResponse>"
    ).encode()


def test_the_digest_covers_the_whole_request_not_the_signature_alone() -> None:
    signed = "host;x-amz-date;x-amz-security-token;x-token-vendor-audience"
    one = parse(proof(Authorization=authorization(signed), **{"X-Amz-Security-Token": "token-one"}))
    other = parse(proof(Authorization=authorization(signed), **{"X-Amz-Security-Token": "token-two"}))

    assert one.digest != other.digest
    assert (
        one.digest
        == parse(proof(Authorization=authorization(signed), **{"X-Amz-Security-Token": "token-one"})).digest
    )
    assert one.digest != hashlib.sha256(authorization(signed).encode()).hexdigest()


def test_a_remembered_signature_with_another_header_goes_to_sts_and_an_edited_body_to_no_one() -> None:
    signed = "host;x-amz-date;x-amz-security-token;x-token-vendor-audience"
    good = proof(Authorization=authorization(signed), **{"X-Amz-Security-Token": "token-one"})
    first = parse(good)
    calls: list[Proof] = []

    def sts(request: Proof, deadline: Deadline) -> Answer:  # STS verifies the whole request
        calls.append(request)
        return Answer(200, {}, _identity_xml(ARN)) if request.digest == first.digest else Answer(403, {}, b"")

    verifier = ProofVerifier(clock=lambda: NOW, send=sts)
    deadline = Deadline.after(5, time.monotonic)

    def identify(raw: object) -> str:
        return verifier.identify(raw, sts_url=STS, audience="token-vendor", deadline=deadline)

    assert identify(good) == ARN
    assert identify(good) == ARN
    assert len(calls) == 1  # remembered
    with pytest.raises(InvalidRequest, match="body"):
        identify({**good, "body": BODY + "&Extra=1"})
    assert len(calls) == 1  # never parsed, never looked up, never sent
    edited = proof(Authorization=authorization(signed), **{"X-Amz-Security-Token": "token-two"})
    with pytest.raises(AccessDenied, match="STS refused"):
        identify(edited)
    assert len(calls) == 2  # not served from memory: STS decided


@pytest.mark.parametrize(
    "configured", ["https://EVIL\\@sts.us-east-1.amazonaws.com/", "https://sts.us-east-1.amazonaws.com/?a=b"]
)
def test_a_configured_endpoint_the_sending_parser_reads_otherwise_is_a_configuration_error(
    configured: str,
) -> None:
    with pytest.raises(ConfigurationError, match="STS_ENDPOINT_URL"):
        parse_proof(proof(configured), sts_url=configured, audience="token-vendor", now=NOW)


def test_a_proof_seen_before_byte_for_byte_is_still_refused_once_its_5_minutes_are_over() -> None:
    """A proof's parse is reused only for the exact same text, and the clock is read again every time."""
    now = [NOW]
    calls: list[Proof] = []

    def sts(request: Proof, deadline: Deadline) -> Answer:
        calls.append(request)
        return Answer(200, {}, _identity_xml(ARN))

    verifier = ProofVerifier(clock=lambda: now[0], send=sts)
    deadline = Deadline.after(5, time.monotonic)
    good = proof()

    assert verifier.identify(good, sts_url=STS, audience="token-vendor", deadline=deadline) == ARN
    now[0] += 299
    assert verifier.identify(good, sts_url=STS, audience="token-vendor", deadline=deadline) == ARN
    now[0] += 2
    with pytest.raises(AccessDenied, match="more than 5 minutes"):
        verifier.identify(good, sts_url=STS, audience="token-vendor", deadline=deadline)
    with pytest.raises(AccessDenied, match="more than 5 minutes"):
        verifier.identify(dict(good), sts_url=STS, audience="token-vendor", deadline=deadline)
    assert len(calls) == 1
