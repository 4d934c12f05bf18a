"""Issue 6: property-based fuzzing of every event parser. Whatever arrives, a parser returns a valid
request or raises InvalidRequest/InvalidScope with a message that says what is wrong; nothing else."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.leak_canary import FIGURES
from token_vendor.errors import InvalidRequest, InvalidScope
from token_vendor.scopes import MAX_SCOPE_LENGTH, MAX_SCOPES, normalise_scopes
from token_vendor.vend_request import parse_document, parse_json_body, parse_query

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)
scope_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.text(
    alphabet='fr:idm*am \t"\\\x00\x7f\u00e9', max_size=60
)
members = st.sampled_from(["scope", "scopes", "minValiditySeconds"]) | st.text(max_size=15)
documents = (
    st.dictionaries(members, json_values | scope_text, max_size=4)
    | st.fixed_dictionaries(
        {"scope": scope_text},
        optional={"minValiditySeconds": st.integers(-(10**6), 10**6) | st.text(max_size=6) | st.booleans()},
    )
    | st.fixed_dictionaries({"scopes": st.lists(scope_text | json_scalars, max_size=30)})
    | json_values
)


def _check(result: Any) -> None:
    assert 1 <= len(result.scopes) <= MAX_SCOPES
    assert list(result.scopes) == sorted(set(result.scopes))
    for scope in result.scopes:
        assert 0 < len(scope) <= MAX_SCOPE_LENGTH
        assert all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in scope)
    assert result.min_validity is None or 0 <= result.min_validity <= 840


def _explained(error: Exception) -> None:
    assert isinstance(error, (InvalidRequest, InvalidScope)), type(error)
    assert len(error.message) >= 10
    assert "\n" not in error.message


@settings(FUZZ, max_examples=3000)
@given(documents)
def test_fuzz_direct_documents(document: Any) -> None:
    FIGURES["fuzz_examples"] += 1
    try:
        _check(parse_document(document, "direct"))
    except (InvalidRequest, InvalidScope) as error:
        _explained(error)


@settings(FUZZ, max_examples=2500)
@given(
    st.dictionaries(
        st.sampled_from(["scope", "minValiditySeconds"]) | st.text(max_size=10),
        st.lists(scope_text | st.text(alphabet="0123456789-+ .e", max_size=25), max_size=25),
        max_size=3,
    )
)
def test_fuzz_queries(params: dict[str, list[str]]) -> None:
    FIGURES["fuzz_examples"] += 1
    try:
        _check(parse_query(params, "arn:aws:iam::1:role/x"))
    except (InvalidRequest, InvalidScope) as error:
        _explained(error)


@settings(FUZZ, max_examples=1500)
@given(
    st.one_of(st.none(), st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))),
    st.booleans(),
)
def test_fuzz_bodies(body: str | None, is_base64: bool) -> None:
    FIGURES["fuzz_examples"] += 1
    try:
        document = parse_json_body(body, is_base64)
    except InvalidRequest as error:
        _explained(error)
        return
    try:
        _check(parse_document(document, "arn"))
    except (InvalidRequest, InvalidScope) as error:
        _explained(error)


@settings(FUZZ, max_examples=1500)
@given(scope_text | st.lists(scope_text, max_size=40))
def test_fuzz_scopes(raw: Any) -> None:
    FIGURES["fuzz_examples"] += 1
    try:
        scopes = normalise_scopes(raw)
    except (InvalidRequest, InvalidScope) as error:
        _explained(error)
        return
    assert normalise_scopes(" ".join(scopes)) == scopes  # normalising is idempotent


# Issue 22: AIC's answers are fuzzed too. Whatever a 200 carries, the parser returns a printable-ASCII token
# and a lifetime of at most a day, or raises UpstreamUnavailable; nothing else, and nothing is kept.
answer_tokens = (
    st.text(max_size=60)
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
    | st.text(alphabet="abc\u00e9\u2603\x00\x7f ", max_size=20)
    | json_scalars
)
answer_lifetimes = (
    st.integers()
    | st.integers(min_value=10**15)
    | st.just(10**400)
    | st.floats()
    | st.booleans()
    | st.text(max_size=8)
    | st.none()
)
answers = (
    st.fixed_dictionaries(
        {"access_token": answer_tokens, "expires_in": answer_lifetimes},
        optional={"scope": json_scalars, "token_type": json_scalars},
    )
    | json_values
)


@FUZZ
@given(answer=answers)
def test_any_answer_is_a_sane_token_or_upstream_unavailable(answer: Any) -> None:
    import json

    from token_vendor.errors import UpstreamUnavailable
    from token_vendor.token_endpoint import MAX_EXPIRES_IN, parse_token_response

    FIGURES["fuzz_examples"] += 1
    try:
        body = json.dumps(answer).encode()
    except (ValueError, OverflowError):
        return
    try:
        token, expires_in, _ = parse_token_response(body)
    except UpstreamUnavailable:
        return
    assert token.isascii()
    assert token.isprintable()
    assert 0 < expires_in <= MAX_EXPIRES_IN


# Issue 21: the identity proof parser. Whatever an invoker writes in 'identity', the parser returns a proof
# for the configured STS endpoint and audience, or refuses with InvalidRequest/AccessDenied; nothing else.
header_names = st.sampled_from(
    ["Host", "X-Amz-Date", "Authorization", "X-Token-Vendor-Audience", "X-Amz-Security-Token"]
) | st.text(max_size=12)
header_values = st.text(max_size=80) | st.sampled_from(
    [
        "127.0.0.1:9",
        "20261130T120000Z",
        "token-vendor",
        "AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/sts/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-token-vendor-audience, Signature=" + "a" * 64,
    ]
)
proofs = (
    st.fixed_dictionaries(
        {
            "method": st.sampled_from(["POST", "GET"]) | json_scalars,
            "url": st.sampled_from(["http://127.0.0.1:9/", "http://169.254.169.254/"]) | json_scalars,
            "headers": st.dictionaries(header_names, header_values | json_scalars, max_size=20) | json_values,
            "body": st.sampled_from(["Action=GetCallerIdentity&Version=2011-06-15"]) | json_scalars,
        },
        optional={"extra": json_scalars},
    )
    | json_values
)


def _says_why(error: Exception) -> None:
    assert len(getattr(error, "message", "")) >= 10


@FUZZ
@given(proof=proofs)
def test_any_identity_is_a_proof_for_this_vendor_or_refused(proof: Any) -> None:
    from token_vendor.errors import AccessDenied
    from token_vendor.identity_proof import parse_proof

    FIGURES["fuzz_examples"] += 1
    try:
        parsed = parse_proof(
            proof, sts_url="http://127.0.0.1:9/", audience="token-vendor", now=1_796_040_000.0
        )
    except (InvalidRequest, AccessDenied) as refused:
        _says_why(refused)
        return
    assert parsed.url == "http://127.0.0.1:9/"
    assert dict(parsed.headers)["X-Token-Vendor-Audience"] == "token-vendor"
