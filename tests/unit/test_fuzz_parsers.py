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
