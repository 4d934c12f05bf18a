"""Issue 6: property-based fuzzing of every event parser. Whatever arrives, a parser returns a valid
request or raises InvalidRequest/InvalidScope with a message that says what is wrong; nothing else."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.leak_canary import FIGURES
from token_vendor.kernel.errors import InvalidRequest, InvalidScope
from token_vendor.kernel.scopes import MAX_SCOPE_LENGTH, MAX_SCOPES, normalise_scopes
from token_vendor.kernel.vend_request import parse_document, parse_json_body, parse_query

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

    from token_vendor.adapters.aic.token_endpoint import MAX_EXPIRES_IN, parse_token_response
    from token_vendor.kernel.errors import UpstreamUnavailable

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


# Issues 21 and 30: the identity proof parser. Whatever an invoker writes in 'identity', the parser returns
# the request the vendor sends (the configured STS endpoint, allow-listed signed headers, this vendor's
# audience) or refuses with InvalidRequest/AccessDenied; nothing else. Most proofs start valid and are bent.
PROOF_STS = "http://127.0.0.1:9/"
PROOF_NOW = 1_796_040_000.0  # 2026-11-30T12:00:00Z
PROOF_SIGNED = "host;x-amz-date;x-amz-security-token;x-token-vendor-audience"


def _authorization(signed: str = PROOF_SIGNED, day: str = "20261130", signature: str = "ab" * 32) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{day}/us-east-1/sts/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


GOOD_HEADERS = {
    "Host": "127.0.0.1:9",
    "X-Amz-Date": "20261130T120000Z",
    "X-Amz-Security-Token": "session-token",
    "X-Token-Vendor-Audience": "token-vendor",
    "Authorization": _authorization(),
}
tricky_urls = (
    st.sampled_from(
        [
            PROOF_STS,
            "http://127.0.0.1:9",
            "HTTP://127.0.0.1:9/",
            "http://127.0.0.1:80/",
            "http://EVIL\\@127.0.0.1:9/",
            "http://127.0.0.1:1\\@127.0.0.1:9/",
            "http://u@127.0.0.1:9/",
            "http://127.0.0.1:9/?a",
            "http://127.0.0.1:9/#a",
            "http://127.0.0.%31:9/",
            "http://127.0.0.1:9/x/../",
            "http://169.254.169.254/",
            "http://127.0.0.1:99999/",
            "http://[::1]:9/",
            "http://[::1/",
        ]
    )
    | st.text(max_size=40).map(lambda t: PROOF_STS + t)
    | st.text(max_size=40)
)
tricky_names = st.sampled_from(
    ["", " X", "X-A:b", "X\r\nY", "host", "HOST", "x-amz-date", "Content-Type", "User-Agent", "authorization"]
) | st.text(max_size=12)
tricky_values = (
    st.sampled_from(
        [
            "20261399T999999Z",
            "20261130T120600Z",
            "20261130T115400Z",
            "00000101T000000Z",
            "token-vendor",
            "127.0.0.1:9",
            _authorization("content-type;" + PROOF_SIGNED),
            _authorization("host;x-amz-date;x-token-vendor-audience"),
            _authorization(day="20261399"),
            _authorization(signature="AB" * 32),
            "a\tb",
            "a\x7fb",
            "\u00e9",
        ]
    )
    | st.text(max_size=60)
    | st.sampled_from([4000, 16_300, 17_000]).map(lambda n: "x" * n)
)
header_edits = st.dictionaries(
    st.sampled_from(list(GOOD_HEADERS)) | tricky_names, tricky_values | json_scalars, min_size=1, max_size=3
)
dropped = st.sets(st.sampled_from(list(GOOD_HEADERS)), min_size=1, max_size=2)


GOOD_PROOF = {
    "method": "POST",
    "url": PROOF_STS,
    "headers": GOOD_HEADERS,
    "body": "Action=GetCallerIdentity&Version=2011-06-15",
}


def _bent(member: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return values.map(lambda value: {**GOOD_PROOF, member: value})


# One thing bent at a time reaches every check; several at once find the interactions.
near_valid_proofs = st.one_of(
    st.just(GOOD_PROOF),
    header_edits.map(lambda edits: {**GOOD_PROOF, "headers": {**GOOD_HEADERS, **edits}}),
    dropped.map(
        lambda drop: {**GOOD_PROOF, "headers": {k: v for k, v in GOOD_HEADERS.items() if k not in drop}}
    ),
    _bent("url", tricky_urls),
    _bent("method", st.sampled_from(["GET", "post", " POST"]) | json_scalars),
    _bent("body", st.text(max_size=50) | json_scalars),
    st.builds(
        lambda url, edits, drop: {
            **GOOD_PROOF,
            "url": url,
            "headers": {**{k: v for k, v in GOOD_HEADERS.items() if k not in drop}, **edits},
        },
        tricky_urls,
        header_edits,
        dropped,
    ),
)
huge = st.sampled_from([8000, 16_400, 40_000]).map(
    lambda n: {"url": PROOF_STS, "headers": {"X": "y" * n}, "body": "", "method": "POST"}
)
deeply_nested = st.sampled_from([1, 50, 500]).map(
    lambda n: functools.reduce(lambda inner, _: {"headers": inner}, range(n), {})
)
identities = st.one_of(
    near_valid_proofs,
    near_valid_proofs,
    st.one_of(
        json_values,
        st.dictionaries(st.text(max_size=10), json_values, max_size=5),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=100),
        huge,
        deeply_nested,
    ),
)


def _says_why(error: Exception) -> None:
    assert len(getattr(error, "message", "")) >= 10
    assert "\n" not in error.message  # type: ignore[attr-defined]


def _parse_identity(identity: Any) -> Any:
    from token_vendor.adapters.aws.identity_proof import parse_proof

    return parse_proof(identity, sts_url=PROOF_STS, audience="token-vendor", now=PROOF_NOW)


@settings(FUZZ, max_examples=800)
@given(proof=identities)
def test_any_identity_is_a_proof_for_this_vendor_or_refused(proof: Any) -> None:
    from token_vendor.kernel.errors import AccessDenied

    FIGURES["fuzz_examples"] += 1
    try:
        parsed = _parse_identity(proof)
    except (InvalidRequest, AccessDenied) as refused:
        _says_why(refused)
        event(type(refused).__name__)
        return
    event("parsed")
    sent = dict(parsed.headers)
    assert parsed.url == PROOF_STS  # the configured address, whatever the proof's url said
    assert set(sent) <= {
        "Authorization",
        "Content-Type",
        "Host",
        "X-Amz-Date",
        "X-Amz-Security-Token",
        "X-Token-Vendor-Audience",
    }
    assert sent["Host"] == "127.0.0.1:9"
    assert sent["X-Token-Vendor-Audience"] == "token-vendor"
    assert all(v.isascii() and v.isprintable() for v in sent.values())
    assert abs(parsed.signed_at - PROOF_NOW) <= 300


# Issue 30: the whole TokenVendorFunction handler with arbitrary 'identity' documents. The only outcomes are
# served, InvalidRequest and AccessDenied; STS (a counting stand-in for the transport) is asked only about a
# proof that parses, and only the genuine one is served.
PROVEN_ARN = "arn:aws:sts::123456789012:assumed-role/reporting/fuzz"


@pytest.fixture
def proving_handler(monkeypatch: pytest.MonkeyPatch) -> Any:
    import json

    from token_vendor import app
    from token_vendor.adapters.aws.identity_proof import ProofVerifier
    from token_vendor.adapters.http.bounded_http import Answer
    from token_vendor.kernel.cached_token import CachedToken, Vended
    from token_vendor.vend import vending
    from token_vendor.wiring import Runtime

    for name, value in {
        "TENANT_FQDN": "openam-example.id.forgerock.io",
        "SERVICE_ACCOUNT_SECRET_ID": "aic/key",
        "TOKEN_CACHE_TABLE": "tokens",
        "STS_ENDPOINT_URL": PROOF_STS,
        "IDENTITY_AUDIENCE": "token-vendor",
        "CALLER_POLICY": json.dumps({"arn:aws:iam::123456789012:role/reporting": ["fr:idm:*"]}),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DIRECT_INVOKE_SCOPES", raising=False)
    genuine = _parse_identity(GOOD_PROOF).digest
    sent: list[Any] = []

    def sts(proof: Any, deadline: Any) -> Answer:  # STS verifies the whole request it is sent
        sent.append(proof)
        if proof.digest != genuine:
            return Answer(403, {}, b"<ErrorResponse/>")
        body = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<GetCallerIdentityResult><Arn>{PROVEN_ARN}</Arn></GetCallerIdentityResult>"
            "</GetCallerIdentityResponse>"
        )
        return Answer(200, {}, body.encode())

    verifier = ProofVerifier(clock=lambda: PROOF_NOW, send=sts)  # the vendor's clock, injected
    monkeypatch.setattr(Runtime, "proof_verifier", lambda self: verifier)
    served: list[Any] = []

    def recording_vend(self: Any, request: Any, deadline: Any) -> Vended:
        self.authorize(request)  # the real policy decision
        served.append(request)
        return Vended(CachedToken("fuzz-token-" + "x" * 20, 4102444800.0, " ".join(request.scopes)), "memory")

    monkeypatch.setattr(vending.TokenVendor, "vend", recording_vend)
    app.reset_runtime()
    yield app.lambda_handler, sent, served
    app.reset_runtime()


@settings(
    FUZZ,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(identity=identities)
@pytest.mark.filterwarnings("ignore:No application metrics")
def test_any_identity_sent_to_the_handler_is_served_or_refused_and_sts_sees_only_parsed_proofs(
    proving_handler: Any, identity: Any
) -> None:
    from local.lambda_context import LocalContext
    from token_vendor.kernel.errors import AccessDenied

    FIGURES["fuzz_examples"] += 1
    handler, sent, served = proving_handler
    before_sent, before_served = len(sent), len(served)
    try:
        parses = _parse_identity(identity).digest
    except (InvalidRequest, AccessDenied):
        parses = None

    try:
        result = handler({"scope": "fr:idm:*", "identity": identity}, LocalContext())
    except (InvalidRequest, AccessDenied) as refused:
        _says_why(refused)
        event(type(refused).__name__)
        assert len(served) == before_served
        if parses is None:
            assert len(sent) == before_sent  # no network call before the proof parses
        return
    event("served")
    assert parses == _parse_identity(GOOD_PROOF).digest  # only the request STS verified is served
    assert result["scope"] == "fr:idm:*"
    assert served[-1].caller == PROVEN_ARN
    assert len(sent) - before_sent <= 1
