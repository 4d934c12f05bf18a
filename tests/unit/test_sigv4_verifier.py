"""The local front's SigV4 verifier against the public SigV4 test-suite vectors.

Source of the vectors: the AWS Signature Version 4 test suite (AWS General Reference, "Signature Version 4
test suite", aws-sig-v4-test-suite), credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service
``service``. Each case is the request as the suite writes it (its raw request line) and the signature AWS
publishes for it; the verifier must compute that signature from the request alone.
"""

from __future__ import annotations

import io
from email.message import Message

import pytest

from local.api_front import MAX_BODY, BadFraming, read_body
from local.sigv4 import (
    canonical_query,
    canonical_request,
    canonical_uri,
    payload_hash,
    signature,
    string_to_sign,
)

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # the suite's published example secret
STAMP = "20150830T123600Z"
SCOPE = "20150830/us-east-1/service/aws4_request"
BASE = [("Host", "example.amazonaws.com"), ("X-Amz-Date", STAMP)]
VECTORS = [
    (
        "get-vanilla",
        "GET",
        "/",
        BASE,
        b"",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "get-unreserved",
        "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        BASE,
        b"",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-slashes",
        "GET",
        "//example//",
        BASE,
        b"",
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "/?Param2=value2&Param1=value1",
        BASE,
        b"",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-query-order-value",
        "GET",
        "/?Param1=value2&Param1=value1",
        BASE,
        b"",
        "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
    ),
    (
        "get-vanilla-utf8-query (sent percent-encoded)",
        "GET",
        "/?%E1%88%B4=bar",
        BASE,
        b"",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    (
        "get-header-value-order",
        "GET",
        "/",
        [*BASE, *(("My-Header1", v) for v in ("value4", "value1", "value3", "value2"))],
        b"",
        "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    ),
    (
        "get-header-key-duplicate",
        "GET",
        "/",
        [*BASE, ("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
        b"",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ),
    (
        "get-header-value-trim",
        "GET",
        "/",
        [*BASE, ("My-Header1", " value1"), ("My-Header2", '"a   b   c"')],
        b"",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST",
        "/",
        [*BASE, ("Content-Type", "application/x-www-form-urlencoded")],
        b"Param1=value1",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
]


@pytest.mark.parametrize(("name", "method", "target", "headers", "body", "expected"), VECTORS)
def test_the_verifier_computes_the_published_signature(
    name: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes, expected: str
) -> None:
    path, _, query = target.partition("?")
    signed = sorted({h.lower() for h, _ in headers})
    canonical = canonical_request(method, path, query, headers, signed, payload_hash(body))
    assert (
        signature(SECRET, STAMP[:8], "us-east-1", "service", string_to_sign(STAMP, SCOPE, canonical))
        == expected
    )


def test_the_session_token_vector() -> None:
    token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
    headers = [*BASE, ("X-Amz-Security-Token", token)]
    canonical = canonical_request(
        "GET", "/", "", headers, ["host", "x-amz-date", "x-amz-security-token"], payload_hash(b"")
    )
    assert (
        signature(SECRET, STAMP[:8], "us-east-1", "service", string_to_sign(STAMP, SCOPE, canonical))
        == "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/example space/", "/example%20space/"), ("/\u1234", "/%E1%88%B4"), ("/a/./b/../c", "/a/c"), ("", "/")],
)
def test_canonical_uris_of_the_suite(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


def test_a_raw_query_and_its_encoded_form_canonicalise_alike() -> None:
    """What a spec-conforming client signs for ``?scope=fr:idm:*``, whichever form went on the wire."""
    assert (
        canonical_query("scope=fr:idm:*") == canonical_query("scope=fr%3Aidm%3A%2A") == "scope=fr%3Aidm%3A%2A"
    )
    assert canonical_query("q=a+b&b&a=1=2") == "a=1%3D2&b=&q=a%2Bb"


# The request body as the front frames it (issue 31): Content-Length or Transfer-Encoding: chunked.


def _message(**headers: str) -> Message:
    message = Message()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return message


def test_a_chunked_body_is_decoded_and_the_next_request_is_left_in_the_stream() -> None:
    stream = io.BytesIO(b"4\r\nWiki\r\nA;ext=1\r\npedia in 1\r\n0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1\r\n")

    body = read_body(stream, _message(Transfer_Encoding="chunked"))

    assert body == b"Wikipedia in 1"
    assert stream.read() == b"GET / HTTP/1.1\r\n"


@pytest.mark.parametrize(
    ("raw", "headers", "status"),
    [
        (b"4\nWiki\r\n0\r\n\r\n", {"Transfer_Encoding": "chunked"}, 400),  # bare LF after the size
        (b"-4\r\nWiki\r\n0\r\n\r\n", {"Transfer_Encoding": "chunked"}, 400),
        (b"4\r\nWiki\r\n", {"Transfer_Encoding": "chunked"}, 400),  # the stream ends before the last chunk
        (b"4\r\nWiki\r\n0\r\nTrailer: x", {"Transfer_Encoding": "chunked"}, 400),
        (b"FFFFFF\r\n", {"Transfer_Encoding": "chunked"}, 413),
        (b"", {"Transfer_Encoding": "identity"}, 501),
        (b"", {"Content_Length": "1e3"}, 400),
        (b"", {"Content_Length": "\u0661"}, 400),
        (b"", {"Content_Length": str(MAX_BODY + 1)}, 413),
    ],
)
def test_a_body_of_uncertain_length_is_refused(raw: bytes, headers: dict[str, str], status: int) -> None:
    with pytest.raises(BadFraming) as refused:
        read_body(io.BytesIO(raw), _message(**headers))

    assert refused.value.status == status


def test_two_content_lengths_that_differ_are_refused() -> None:
    message = _message(Content_Length="5")
    message["Content-Length"] = "6"

    with pytest.raises(BadFraming):
        read_body(io.BytesIO(b"hello!"), message)
