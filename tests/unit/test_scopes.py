from __future__ import annotations

import pytest

from token_vendor.kernel.errors import InvalidRequest, InvalidScope
from token_vendor.kernel.scopes import check_allowed, normalise_scopes


@pytest.mark.parametrize(
    "raw",
    ["fr:idm:* fr:am:*", "  fr:am:*\tfr:idm:*\n", ["fr:am:*", "fr:idm:*"], ["fr:idm:* fr:am:*", "fr:am:*"]],
)
def test_every_spelling_normalises_to_one_sorted_set(raw: object) -> None:
    assert normalise_scopes(raw) == ("fr:am:*", "fr:idm:*")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "no scope"),
        ("   ", "no scope"),
        ([], "no scope"),
        ('fr:idm:* a"b', "U\\+0022"),
        ("a\\b", "U\\+005C"),
        ("caf\u00e9", "U\\+00E9"),
        ("a\x01b", "U\\+0001"),
        ("x" * 129, "129 characters"),
        (" ".join(f"s{i}" for i in range(21)), "21 scopes"),
        (["x"] * 100, "100 scopes"),
        ("x " * 10_000, "characters long"),
    ],
)
def test_malformed_scopes_say_what_is_wrong(raw: object, says: str) -> None:
    with pytest.raises(InvalidScope, match=says):
        normalise_scopes(raw)


@pytest.mark.parametrize("raw", [None, 3, {"a": 1}, ["ok", 3], True])
def test_wrong_types_are_invalid_requests(raw: object) -> None:
    with pytest.raises(InvalidRequest):
        normalise_scopes(raw)


def test_duplicates_collapse_before_the_limit() -> None:
    assert normalise_scopes(" ".join(["fr:idm:*"] * 30)) == ("fr:idm:*",)


def test_allowed_scopes_names_what_is_outside() -> None:
    check_allowed(("fr:idm:*",), frozenset({"fr:idm:*", "fr:am:*"}))
    check_allowed(("anything",), None)
    with pytest.raises(InvalidScope, match="fr:iga:\\* fr:x"):
        check_allowed(("fr:idm:*", "fr:x", "fr:iga:*"), frozenset({"fr:idm:*"}))


def test_a_comma_is_refused_with_a_hint_that_scopes_are_separated_by_spaces() -> None:
    """Issue 12: 'fr:idm:*,fr:am:*' would go to AIC and come back as 'not granted'."""
    with pytest.raises(InvalidScope, match="separate scopes with spaces"):
        normalise_scopes("fr:idm:*,fr:am:*")
