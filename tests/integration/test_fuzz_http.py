"""Issue 6: property-based fuzzing of the whole handler with API Gateway events (REST v1 and HTTP API v2).

Never a 5xx, never a vend for a refused request, always an RFC 6749 body whose description says what is
wrong. The vend itself is replaced by a recorder (after the real policy check), so this needs no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.lambda_context import LocalContext
from tests.leak_canary import FIGURES
from token_vendor.kernel.cached_token import Vended

# The recording vend emits no metrics of its own, so Powertools warns that a flush was empty.
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

ALLOWED = "arn:aws:sts::123456789012:assumed-role/reporting/fuzz"
POLICY = json.dumps({"arn:aws:iam::123456789012:role/reporting": ["fr:idm:*", "fr:am:*"]})

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
# Issue 15: non-ASCII digits ('\u00b2'.isdigit() is True), numbers too long for int(), and values that are
# not strings at all (API Gateway never sends them; a hand-made event may).
odd_digits = st.sampled_from(["\u00b2", "\u0661\u0662\u0660", "\uff11\uff12\uff10", "9" * 400, "6e2", "-0"])
scope_values = st.lists(
    st.sampled_from(["fr:idm:*", "fr:am:*", "fr:iga:*", "", " ", 'a"b', "\u00e9", "x" * 200, "a,b"])
    | text
    | odd_digits,
    max_size=6,
)
not_strings = (
    st.none() | st.integers() | st.booleans() | st.lists(text, max_size=2) | st.dictionaries(text, text)
)
deep = st.integers(200, 9000).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, '{"scope":' * n + "1" + "}" * n, "[" * n])
)
rest_events = st.fixed_dictionaries(
    {
        "httpMethod": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
        "path": st.sampled_from(["/token", "/token/", "/", "/admin", "/token/x"])
        | text.map(lambda t: "/" + t),
        "multiValueQueryStringParameters": st.none()
        | st.dictionaries(
            st.sampled_from(["scope", "minValiditySeconds", "x"]) | text,
            scope_values | st.lists(not_strings, min_size=1, max_size=2) | not_strings,
            max_size=3,
        ),
        "headers": st.none()
        | st.dictionaries(
            st.sampled_from(["Host", "X-Amz-Date", "Content-Type"]) | text, text | not_strings, max_size=3
        ),
        "body": st.none()
        | text
        | deep
        | st.builds(
            json.dumps,
            st.dictionaries(
                st.sampled_from(["scope", "scopes", "minValiditySeconds", "other"]),
                st.none() | st.integers(-5, 10**6) | scope_values | text | odd_digits | not_strings,
                max_size=3,
            ),
        ),
        "isBase64Encoded": st.booleans(),
        "requestContext": st.fixed_dictionaries(
            {
                "identity": st.fixed_dictionaries(
                    {}, optional={"userArn": st.sampled_from([ALLOWED]) | text | st.none()}
                )
            }
        ),
    }
)
v2_events = st.fixed_dictionaries(
    {
        "version": st.just("2.0"),
        "rawPath": st.sampled_from(["/token", "/x"]),
        "rawQueryString": text
        | not_strings
        | st.sampled_from(
            ["scope=fr%3Aidm%3A%2A", "scope=%00", "scope=a&scope=b&x=1", "scope=x&minValiditySeconds=%C2%B2"]
        ),
        "headers": st.none() | st.dictionaries(text, text | not_strings, max_size=3),
        "requestContext": st.fixed_dictionaries(
            {
                "stage": st.just("$default"),
                "http": st.fixed_dictionaries(
                    {
                        "method": st.sampled_from(["GET", "POST", "PUT"]),
                        "path": st.sampled_from(["/token", "/x"]),
                    }
                ),
                "authorizer": st.fixed_dictionaries(
                    {"iam": st.fixed_dictionaries({"userArn": st.sampled_from([ALLOWED]) | text})}
                ),
            }
        ),
        "body": st.none() | text | deep,
        "isBase64Encoded": st.booleans(),
    }
)


@pytest.fixture
def handler(function_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from token_vendor import app
    from token_vendor.kernel.cached_token import CachedToken
    from token_vendor.vend import vending

    function_env(CALLER_POLICY=POLICY)
    calls: list[Any] = []

    def recording_vend(self: Any, request: Any, deadline: Any) -> Vended:
        self.authorize(request)  # the real policy decision, before any I/O
        calls.append(request)
        return Vended(CachedToken("fuzz-token-" + "x" * 20, 4102444800.0, " ".join(request.scopes)), "memory")

    monkeypatch.setattr(vending.TokenVendor, "vend", recording_vend)
    return app.http_handler, calls


odd = st.none() | text | st.integers() | st.dictionaries(text, text, max_size=2) | st.lists(text, max_size=2)
malformed = st.fixed_dictionaries(
    {
        "requestContext": st.dictionaries(
            st.sampled_from(["identity", "http", "stage", "authorizer"]), odd, max_size=3
        )
    },
    optional={
        "path": odd,
        "rawPath": odd,
        "headers": odd,
        "body": odd,
        "queryStringParameters": odd,
        "multiValueQueryStringParameters": odd,
    },
).flatmap(lambda e: st.sampled_from([{**e, "httpMethod": "GET"}, {**e, "version": "2.0"}]))


@settings(
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=rest_events | v2_events | malformed)
def test_fuzz_the_http_front(handler: Any, event: dict[str, Any]) -> None:
    FIGURES["fuzz_examples"] += 1
    lambda_handler, calls = handler
    before = len(calls)

    response = lambda_handler(event, LocalContext())

    status = response["statusCode"]
    assert status < 500, response
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    headers.update({k.lower(): v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()})
    assert headers.get("cache-control") == "no-store"
    body = json.loads(response["body"])
    if status == 200:
        assert len(calls) == before + 1
        assert body["scope"] == " ".join(calls[-1].scopes)
    else:
        assert 400 <= status < 500
        assert len(calls) == before
        assert set(body) == {"error", "error_description"}
        assert len(body["error_description"]) >= 10
