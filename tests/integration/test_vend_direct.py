"""Issue 2: a direct invocation returns a real token from the stand-in, signed with the stored key."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
import urllib3

from local.stack import LocalStack, private_jwk, public_jwk
from token_vendor.adapters.aic.assertion import sign_assertion
from token_vendor.kernel.errors import ConfigurationError, InvalidRequest, InvalidScope, UpstreamRejected

pytestmark = pytest.mark.integration


def test_direct_invocation_returns_a_token_that_works_at_aic(invoke: Any, fresh_stack: LocalStack) -> None:
    result = invoke({"scope": "fr:idm:*"})

    assert set(result) == {"access_token", "token_type", "expires_in", "expires_at", "scope"}
    assert result["token_type"] == "Bearer"
    assert result["scope"] == "fr:idm:*"
    assert 890 <= result["expires_in"] <= 899
    assert abs(result["expires_at"] - (time.time() + result["expires_in"])) <= 2
    response = urllib3.request(
        "GET",
        fresh_stack.standin.base_url + "/openidm/managed/alpha_user",
        headers={"Authorization": f"Bearer {result['access_token']}"},
    )
    assert response.status == 200
    assert response.json()["resultCount"] == 3


def test_step_functions_event_with_scope_list_and_min_validity(invoke: Any) -> None:
    result = invoke({"scopes": ["fr:idm:*", "fr:am:*"], "minValiditySeconds": 600})

    assert result["scope"] == "fr:am:* fr:idm:*"
    assert result["expires_in"] >= 600


def test_the_assertion_sent_is_what_aic_expects(invoke: Any, fresh_stack: LocalStack) -> None:
    invoke({"scope": "fr:idm:*"})
    invoke({"scope": "fr:am:*"})

    assertions = fresh_stack.standin.assertions_seen()[-2:]
    claims = [
        jwt.decode(
            a, fresh_stack.key.public_key(), algorithms=["RS256"], audience=fresh_stack.standin.token_url
        )
        for a in assertions
    ]
    for c in claims:
        assert c["iss"] == c["sub"] == fresh_stack.account_id
        assert c["aud"] == fresh_stack.standin.token_url
        assert 0 < c["exp"] - c["iat"] <= 900
        uuid.UUID(c["jti"])
    assert claims[0]["jti"] != claims[1]["jti"]
    assert jwt.get_unverified_header(assertions[0]) == {"alg": "RS256", "typ": "JWT"}


@pytest.mark.parametrize(
    "event",
    [
        {"scope": ""},
        {"scope": "fr:idm:* \u00e9"},
        {"scopes": []},
    ],
)
def test_bad_scopes_are_refused_before_any_exchange(invoke: Any, fresh_stack: LocalStack, event: Any) -> None:
    with pytest.raises(InvalidScope):
        invoke(event)
    assert fresh_stack.standin.token_requests == 0


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"scope": "fr:idm:*", "extra": 1}, "unknown member"),
        ({"scope": "fr:idm:*", "minValiditySeconds": 900}, "minValiditySeconds"),
        ({"scope": "fr:idm:*", "minValiditySeconds": "600"}, "minValiditySeconds"),
        ("fr:idm:*", "JSON object"),
        ({}, "required"),
    ],
)
def test_malformed_events_name_the_problem(
    invoke: Any, fresh_stack: LocalStack, event: Any, says: str
) -> None:
    with pytest.raises(InvalidRequest, match=says):
        invoke(event)
    assert fresh_stack.standin.token_requests == 0


def test_scope_outside_allowed_scopes_is_refused_without_io(
    function_env: Any, invoke: Any, fresh_stack: LocalStack
) -> None:
    function_env(ALLOWED_SCOPES="fr:idm:*")

    with pytest.raises(InvalidScope, match="fr:am:\\*"):
        invoke({"scope": "fr:idm:* fr:am:*"})
    assert fresh_stack.standin.token_requests == 0


def test_scope_the_account_lacks_is_reported_by_name(invoke: Any) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        invoke({"scope": "fr:idm:* fr:iga:*"})

    assert caught.value.upstream_code == "invalid_scope"
    assert caught.value.rejected_scopes == ("fr:iga:*",)
    assert "fr:iga:*" in caught.value.message


def test_a_wrong_key_is_rejected_as_invalid_grant(
    invoke: Any, fresh_stack: LocalStack, other_rsa_key: Any
) -> None:
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(other_rsa_key)])

    with pytest.raises(UpstreamRejected) as caught:
        invoke({"scope": "fr:idm:*"})
    assert caught.value.upstream_code == "invalid_grant"


def test_a_wrong_audience_is_rejected(function_env: Any, invoke: Any) -> None:
    function_env(ASSERTION_AUDIENCE="https://elsewhere.example.com:443/am/oauth2/access_token")

    with pytest.raises(UpstreamRejected) as caught:
        invoke({"scope": "fr:idm:*"})
    assert caught.value.upstream_code == "invalid_grant"


def test_an_unknown_account_is_rejected(fresh_stack: LocalStack, invoke: Any) -> None:
    fresh_stack.put_secret(
        json.dumps({"serviceAccountId": str(uuid.uuid4()), "jwk": private_jwk(fresh_stack.key)})
    )

    with pytest.raises(UpstreamRejected) as caught:
        invoke({"scope": "fr:idm:*"})
    assert caught.value.upstream_code == "invalid_grant"


def _post_assertion(
    stack: LocalStack, assertion: str, scope: str = "fr:idm:*", client_id: str = "service-account"
) -> Any:
    return urllib3.PoolManager().request(
        "POST",
        stack.standin.token_url,
        fields={
            "client_id": client_id,
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion,
            "scope": scope,
        },
        encode_multipart=False,
    )


def _sign(
    stack: LocalStack,
    *,
    now: float | None = None,
    jti: str | None = None,
    lifetime: int = 180,
    aud: str | None = None,
) -> str:
    return sign_assertion(
        stack.key,
        stack.account_id,
        aud or stack.standin.token_url,
        now=time.time() if now is None else now,
        new_jti=lambda: jti or str(uuid.uuid4()),
        lifetime=lifetime,
    ).jwt


class TestTheStandInEnforcesWhatAicEnforces:
    def test_a_good_assertion_gets_an_899_second_token(self, fresh_stack: LocalStack) -> None:
        response = _post_assertion(fresh_stack, _sign(fresh_stack))
        assert response.status == 200
        assert response.json()["expires_in"] == 899

    def test_a_replayed_jti_is_refused(self, fresh_stack: LocalStack) -> None:
        jti = str(uuid.uuid4())
        assert _post_assertion(fresh_stack, _sign(fresh_stack, jti=jti)).status == 200
        replay = _post_assertion(fresh_stack, _sign(fresh_stack, jti=jti))
        assert replay.status == 400
        assert replay.json()["error"] == "invalid_grant"

    def test_an_expired_assertion_is_refused(self, fresh_stack: LocalStack) -> None:
        response = _post_assertion(fresh_stack, _sign(fresh_stack, now=time.time() - 600, lifetime=60))
        assert response.status == 400
        assert response.json()["error"] == "invalid_grant"

    def test_an_assertion_living_past_15_minutes_is_refused(self, fresh_stack: LocalStack) -> None:
        response = _post_assertion(fresh_stack, _sign(fresh_stack, now=time.time() + 300, lifetime=900))
        assert response.status == 400
        assert response.json()["error"] == "invalid_grant"

    def test_a_wrong_audience_is_refused(self, fresh_stack: LocalStack) -> None:
        response = _post_assertion(
            fresh_stack, _sign(fresh_stack, aud="https://other:443/am/oauth2/access_token")
        )
        assert response.status == 400
        assert response.json()["error"] == "invalid_grant"

    def test_another_client_id_is_refused(self, fresh_stack: LocalStack) -> None:
        response = _post_assertion(fresh_stack, _sign(fresh_stack), client_id="my-app")
        assert response.status == 400
        assert response.json()["error"] == "invalid_client"

    def test_a_scope_outside_the_accounts_uses_aics_text(self, fresh_stack: LocalStack) -> None:
        response = _post_assertion(fresh_stack, _sign(fresh_stack), scope="fr:idm:* a:b c:d")
        assert response.status == 400
        assert response.json() == {
            "error": "invalid_scope",
            "error_description": "Unsupported scope for service account: a:b,c:d",
        }


def test_a_malformed_secret_is_a_configuration_error_without_key_material(
    fresh_stack: LocalStack, invoke: Any, caplog: pytest.LogCaptureFixture
) -> None:
    jwk = private_jwk(fresh_stack.key)
    del jwk["n"]
    fresh_stack.put_secret(json.dumps({"serviceAccountId": fresh_stack.account_id, "jwk": jwk}))

    with pytest.raises(ConfigurationError) as caught:
        invoke({"scope": "fr:idm:*"})
    assert "'n'" in caught.value.message
    for member in ("d", "p", "q", "dp", "dq", "qi"):
        assert jwk[member] not in caught.value.message
        assert jwk[member] not in caplog.text


def test_a_bad_setting_fails_with_one_line_naming_it(function_env: Any, invoke: Any) -> None:
    function_env(TENANT_FQDN="https://tenant.example.com/am")

    with pytest.raises(ConfigurationError, match="TENANT_FQDN"):
        invoke({"scope": "fr:idm:*"})
    with pytest.raises(ConfigurationError, match="TENANT_FQDN"):
        invoke({"scope": "fr:idm:*"})
