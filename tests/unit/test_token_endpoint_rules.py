"""The pure parts of the exchange: OAuth error mapping, token response checks, Retry-After."""

from __future__ import annotations

import pytest

from token_vendor.adapters.aic.token_endpoint import map_oauth_error, parse_retry_after, parse_token_response
from token_vendor.kernel.errors import UpstreamUnavailable


def test_aics_unsupported_scope_is_reported_by_scope_name() -> None:
    error = map_oauth_error(
        400,
        b'{"error":"invalid_scope","error_description":"Unsupported scope for service account: fr:x,fr:y"}',
    )
    assert error.upstream_code == "invalid_scope"
    assert error.rejected_scopes == ("fr:x", "fr:y")
    assert "fr:x fr:y" in error.message


@pytest.mark.parametrize(
    "code", ["invalid_grant", "invalid_client", "unauthorized_client", "invalid_request"]
)
def test_oauth_errors_keep_their_code(code: str) -> None:
    error = map_oauth_error(400, f'{{"error":"{code}","error_description":"why"}}'.encode())
    assert error.upstream_code == code
    assert error.message == f"token endpoint rejected the request: {code} (why)"


@pytest.mark.parametrize("body", [b"<html>nope</html>", b"", b"[]", b'{"error": 5}'])
def test_a_4xx_without_an_oauth_body_names_the_status(body: bytes) -> None:
    assert map_oauth_error(404, body).upstream_code == "http_404"


def test_an_odd_upstream_code_is_not_passed_through() -> None:
    assert map_oauth_error(400, b'{"error":"<script>"}').upstream_code == "invalid_response"


def test_upstream_descriptions_are_cleaned_and_bounded() -> None:
    error = map_oauth_error(
        400, ('{"error":"invalid_grant","error_description":"a\\u0000b' + "x" * 500 + '"}').encode()
    )
    assert "\x00" not in error.message
    assert len(error.message) < 300


def test_a_good_token_response() -> None:
    assert parse_token_response(b'{"access_token":"t","expires_in":899,"scope":"fr:idm:*"}') == (
        "t",
        899,
        "fr:idm:*",
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"garbage", "not JSON"),
        (b"[1]", "not an object"),
        (b'{"expires_in":899}', "without an access_token"),
        (b'{"access_token":"","expires_in":899}', "without an access_token"),
        (b'{"access_token":"t"}', "expires_in"),
        (b'{"access_token":"t","expires_in":0}', "expires_in"),
        (b'{"access_token":"t","expires_in":-5}', "expires_in"),
        (b'{"access_token":"t","expires_in":"899"}', "expires_in"),
        (b'{"access_token":"t","expires_in":true}', "expires_in"),
    ],
)
def test_a_malformed_token_response_is_upstream_unavailable(body: bytes, says: str) -> None:
    with pytest.raises(UpstreamUnavailable, match=says):
        parse_token_response(body)


def test_a_malformed_response_never_echoes_the_body() -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        parse_token_response(b'{"access_token":"eyJsecret-token-value","expires_in":"x"}')
    assert "eyJsecret" not in caught.value.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 10 ", 10.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=1445412480.0) == expected


@pytest.mark.parametrize(
    "header",
    [
        "9" * 400,
        "\u00b2",
        "\u0661\u0662",
        "1.5",
        "-3",
        "5 seconds",
        "Mon, 99 Foo 99999 99:99:99 GMT",
        "x" * 500,
    ],
)
def test_retry_after_that_is_neither_delay_seconds_nor_a_date_is_ignored_or_capped(header: str) -> None:
    """Issue 15: 400 nines used to overflow int(); a non-ASCII digit passed str.isdigit()."""
    value = parse_retry_after(header, now=1445412480.0)
    assert value is None or 0 <= value <= 60


def test_a_huge_retry_after_is_capped() -> None:
    assert parse_retry_after("999999999", now=0.0) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2099 07:28:00 GMT", now=1445412480.0) == 60.0


def test_an_assertion_whose_signing_used_the_time_left_is_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyless signing is a kms:Sign round trip: when it ends past the deadline (a lease holder's work
    ends with its lease), the exchange is not sent (simulation seed 687842084: a holder called AIC 0.15 s
    after its lease ended, the KMS call having used the rest)."""
    from token_vendor.adapters.aic.assertion import Assertion
    from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
    from token_vendor.kernel.deadline import Deadline

    now = [0.0]
    endpoint = TokenEndpoint("http://127.0.0.1:1/token")
    sent: list[object] = []
    monkeypatch.setattr(endpoint, "_attempt", lambda *args: sent.append(args))

    def slow_sign() -> Assertion:
        now[0] += 2.0  # the KMS round trip
        return Assertion("header.claims.signature", "jti-1")

    with pytest.raises(UpstreamUnavailable, match="no time left"):
        endpoint.exchange(slow_sign, ("fr:idm:*",), Deadline.after(1.5, lambda: now[0]))
    assert sent == []
