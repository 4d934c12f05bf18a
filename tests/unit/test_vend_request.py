from __future__ import annotations

import base64

import pytest

from token_vendor.kernel.errors import InvalidRequest, InvalidScope
from token_vendor.kernel.vend_request import parse_document, parse_json_body, parse_query


def test_a_direct_event() -> None:
    request = parse_document({"scopes": ["fr:idm:*", "fr:am:*"], "minValiditySeconds": 600}, "direct")
    assert (request.scopes, request.min_validity, request.caller) == (("fr:am:*", "fr:idm:*"), 600, "direct")


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"scope": "a", "scopes": ["a"]}, "not both"),
        ({"scope": ["a"]}, "'scope' must be a string"),
        ({"scopes": "a"}, "'scopes' must be a list"),
        ({"scope": "a", "minValiditySeconds": -1}, "from 0 to 840"),
        ({"scope": "a", "minValiditySeconds": 841}, "841"),
        ({"scope": "a", "minValiditySeconds": 1.5}, "whole number"),
        ({"scope": "a", "minValiditySeconds": True}, "whole number"),
        ({"scope": "a", "Scope": "b"}, "unknown member"),
        (None, "JSON object"),
        ([], "JSON object"),
    ],
)
def test_bad_documents_say_what_is_wrong(event: object, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        parse_document(event, "direct")


def test_query_with_repeated_and_space_separated_scopes() -> None:
    request = parse_query({"scope": ["fr:idm:*", "fr:am:* fr:idm:*"], "minValiditySeconds": ["300"]}, "arn")
    assert (request.scopes, request.min_validity) == (("fr:am:*", "fr:idm:*"), 300)


@pytest.mark.parametrize(
    ("params", "error", "says"),
    [
        ({}, InvalidRequest, "required"),
        ({"scope": [""]}, InvalidScope, "no scope"),
        ({"scope": ["a"], "x": ["1"]}, InvalidRequest, "unknown query parameter"),
        ({"scope": ["a"], "minValiditySeconds": ["ten"]}, InvalidRequest, "whole number"),
        ({"scope": ["a"], "minValiditySeconds": ["1", "2"]}, InvalidRequest, "once"),
        ({"scope": ["a"], "minValiditySeconds": ["99999999"]}, InvalidRequest, "whole number"),
    ],
)
def test_bad_queries(params: dict[str, list[str]], error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        parse_query(params, "arn")


def test_bodies_plain_and_base64() -> None:
    assert parse_json_body('{"scope":"a"}', is_base64=False) == {"scope": "a"}
    assert parse_json_body(base64.b64encode(b'{"scope":"a"}').decode(), is_base64=True) == {"scope": "a"}


@pytest.mark.parametrize(
    ("body", "b64", "says"),
    [
        (None, False, "needs a JSON body"),
        ("", False, "needs a JSON body"),
        ("{nope", False, "not valid JSON"),
        ("%%%", True, "not valid base64"),
        (base64.b64encode(b"\xff\xfe").decode(), True, "not valid JSON"),
        ("{" + " " * 40_000 + "}", False, "larger than"),
    ],
)
def test_bad_bodies(body: str | None, b64: bool, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        parse_json_body(body, is_base64=b64)
