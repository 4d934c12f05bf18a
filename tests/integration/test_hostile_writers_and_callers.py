"""Issue 15: what a careless IAM grant, a table writer, a slow or refusing AIC and odd input could do.

Each test pins one defect the adversarial review reproduced; each failed before its fix."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from local.aic_standin import Fault
from local.stack import TENANT, LocalStack, new_rsa_key, public_jwk
from tests.integration.conftest import FakeWall, budget, direct, fleet_in_refresh_window
from tests.integration.test_http import POLICY, load
from tests.leak_canary import CANARY, FIGURES
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.adapters.aws.token_table import TokenTable
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import (
    AccessDenied,
    ConfigurationError,
    InvalidRequest,
    InvalidScope,
    UpstreamRejected,
    UpstreamUnavailable,
)

pytestmark = pytest.mark.integration


def _key(stack: LocalStack, scope: str = "fr:idm:*") -> str:
    return cache_key(TENANT, stack.secret_id, (scope,))


def _item(stack: LocalStack, scope: str = "fr:idm:*") -> dict[str, Any]:
    got = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"pk": {"S": _key(stack, scope)}})
    return dict(got.get("Item", {}))


def _put(stack: LocalStack, item: dict[str, Any]) -> None:
    stack.client("dynamodb").put_item(TableName=stack.table_name, Item=item)


# -- 1. direct invocation is deny by default ---------------------------------------------------------
def test_direct_invocation_without_direct_invoke_scopes_is_denied_before_any_io(
    function_env: Any, invoke: Any, fresh_stack: LocalStack
) -> None:
    function_env(DIRECT_INVOKE_SCOPES="")
    for event in ({"scope": "fr:idm:*"}, {"scopes": ["fr:idm:*", "fr:am:*"], "minValiditySeconds": 600}):
        with pytest.raises(AccessDenied, match="DIRECT_INVOKE_SCOPES is not set"):
            invoke(event)
    assert fresh_stack.standin.token_requests == 0
    assert _item(fresh_stack) == {}


def test_direct_invoke_scopes_grant_only_what_they_match(
    function_env: Any, invoke: Any, fresh_stack: LocalStack
) -> None:
    function_env(DIRECT_INVOKE_SCOPES="fr:idm:*")
    assert invoke({"scope": "fr:idm:*"})["scope"] == "fr:idm:*"
    with pytest.raises(AccessDenied, match="'fr:am:\\* fr:idm:\\*'"):
        invoke({"scope": "fr:idm:* fr:am:*"})
    assert fresh_stack.standin.exchanges == 1


def test_a_star_grants_what_allowed_scopes_allows_and_no_more(function_env: Any, invoke: Any) -> None:
    function_env(DIRECT_INVOKE_SCOPES="*", ALLOWED_SCOPES="fr:idm:*")
    assert invoke({"scope": "fr:idm:*"})["scope"] == "fr:idm:*"
    with pytest.raises(InvalidScope, match="not allowed by this deployment: fr:am:\\*"):
        invoke({"scope": "fr:am:*"})


def test_a_malformed_direct_invoke_scopes_is_a_configuration_error(function_env: Any, invoke: Any) -> None:
    function_env(DIRECT_INVOKE_SCOPES='fr:idm:* "quoted"')
    with pytest.raises(ConfigurationError, match="DIRECT_INVOKE_SCOPES"):
        invoke({"scope": "fr:idm:*"})


# -- 2. no oracle for ALLOWED_SCOPES; 12. the principal as evaluated --------------------------------
def _call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from local.lambda_context import LocalContext
    from token_vendor import app

    response = app.http_handler(event, LocalContext())
    return response["statusCode"], json.loads(response["body"])


def test_a_caller_the_policy_does_not_name_gets_403_whatever_it_asks(
    function_env: Any, fresh_stack: LocalStack
) -> None:
    function_env(CALLER_POLICY=POLICY, ALLOWED_SCOPES="fr:idm:*")
    for scope in ("fr:idm:*", "fr:am:*", "not-even-allowed"):
        event = load("rest_get.json")
        event["requestContext"]["identity"]["userArn"] = "arn:aws:sts::123456789012:assumed-role/stranger/s1"
        event["queryStringParameters"] = {"scope": scope}
        event["multiValueQueryStringParameters"] = {"scope": [scope]}
        status, body = _call(event)
        assert (status, body["error"]) == (403, "access_denied"), scope
        assert "not allowed by this deployment" not in body["error_description"]
        # The message names the principal as the policy evaluated it.
        assert "arn:aws:iam::123456789012:role/stranger" in body["error_description"]
    assert fresh_stack.standin.token_requests == 0


def test_a_named_caller_still_learns_when_its_grant_exceeds_the_deployment(function_env: Any) -> None:
    policy = json.dumps({"arn:aws:iam::123456789012:role/reporting": ["fr:*"]})
    function_env(CALLER_POLICY=policy, ALLOWED_SCOPES="fr:idm:*")
    event = load("rest_get.json")
    event["queryStringParameters"] = {"scope": "fr:am:*"}
    event["multiValueQueryStringParameters"] = {"scope": ["fr:am:*"]}
    status, body = _call(event)
    assert (status, body["error"]) == (400, "invalid_scope")


# -- 3. configuration details never reach HTTP callers -----------------------------------------------
def test_a_missing_secret_answers_500_naming_nothing_but_the_log_has_the_detail(
    function_env: Any, fresh_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    function_env(CALLER_POLICY=POLICY, SERVICE_ACCOUNT_SECRET_ID="no-such-secret-7f3a")
    status, body = _call(load("rest_get.json"))

    assert (status, body["error"]) == (500, "server_error")
    assert "no-such-secret" not in json.dumps(body)
    assert "secretsmanager" not in json.dumps(body)
    assert "request id" in body["error_description"]
    assert "no-such-secret-7f3a was not found" in capsys.readouterr().out  # the audit line keeps it


def test_direct_invokers_inside_the_account_keep_the_detail(function_env: Any, invoke: Any) -> None:
    function_env(SERVICE_ACCOUNT_SECRET_ID="no-such-secret-7f3a")
    with pytest.raises(ConfigurationError, match="no-such-secret-7f3a was not found"):
        invoke({"scope": "fr:idm:*"})


# -- 4. odd input is a 400, never a 500 --------------------------------------------------------------
@pytest.mark.parametrize(
    "value", ["\u00b2", "\u0661\u0662\u0660", "\uff11\uff12\uff10", "6e2", "120.0", " ", "9" * 400]
)
def test_min_validity_that_is_not_ascii_digits_is_400(function_env: Any, value: str) -> None:
    function_env(CALLER_POLICY=POLICY)
    event = load("rest_get.json")
    event["queryStringParameters"] = {"scope": "fr:idm:*", "minValiditySeconds": value}
    event["multiValueQueryStringParameters"] = {"scope": ["fr:idm:*"], "minValiditySeconds": [value]}
    status, body = _call(event)
    assert (status, body["error"]) == (400, "invalid_request")
    assert "minValiditySeconds" in body["error_description"]


def test_deeply_nested_json_is_400(function_env: Any, fresh_stack: LocalStack) -> None:
    function_env(CALLER_POLICY=POLICY)
    event = load("rest_post.json")
    event["body"] = "[" * 7000 + "]" * 7000
    status, body = _call(event)
    assert (status, body["error"]) == (400, "invalid_request")
    assert fresh_stack.standin.token_requests == 0


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("headers", {"Host": 7}),
        ("headers", {"X-Forwarded-For": None}),
        ("multiValueHeaders", {"Host": "not-a-list"}),
        ("multiValueHeaders", {"Host": [1]}),
        ("queryStringParameters", {"scope": ["fr:idm:*"]}),
        ("multiValueQueryStringParameters", {"scope": "fr:idm:*"}),
    ],
)
def test_non_string_header_or_query_values_are_400_before_any_route(
    function_env: Any, fresh_stack: LocalStack, member: str, value: Any
) -> None:
    function_env(CALLER_POLICY=POLICY)
    event = load("rest_get.json")
    event[member] = value
    status, body = _call(event)
    assert (status, body["error"]) == (400, "invalid_request")
    assert member in body["error_description"]
    assert fresh_stack.standin.token_requests == 0


# -- 12. events that look like API Gateway but are not proxy events ---------------------------------
@pytest.mark.parametrize(
    "event",
    [
        {"requestContext": {"identity": {}}, "scope": "fr:idm:*"},
        {"headers": {"Host": "x"}, "scope": "fr:idm:*"},
        {"httpMethod": "GET", "scope": "fr:idm:*"},
        {"version": "2.0", "rawPath": "/token", "scope": "fr:idm:*"},
    ],
)
def test_api_gateway_lookalikes_are_refused_as_invalid_request(
    invoke: Any, fresh_stack: LocalStack, event: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRequest, match="is not served by this function"):
        invoke(event)
    assert fresh_stack.standin.token_requests == 0


# -- 5. table writers --------------------------------------------------------------------------------
def test_with_encryption_an_extended_expiry_is_a_miss_not_a_longer_token(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    make_vendor().vend(direct("fr:idm:*"), budget())
    item = _item(fresh_stack)
    item["expires_at"] = {"N": str(time.time() + 9_999_999)}
    _put(fresh_stack, item)

    again = make_vendor().vend(direct("fr:idm:*"), budget())

    assert again.tier == "minted"  # the tampered item opened as a miss
    assert again.token.seconds_left(time.time()) <= 899
    assert fresh_stack.standin.exchanges == 2


def test_with_encryption_a_scope_rewrite_is_a_miss(make_vendor: Any, fresh_stack: LocalStack) -> None:
    make_vendor().vend(direct("fr:idm:*"), budget())
    item = _item(fresh_stack)
    item["scope"] = {"S": "fr:idm:* fr:am:*"}
    _put(fresh_stack, item)

    again = make_vendor().vend(direct("fr:idm:*"), budget())
    assert (again.tier, again.token.scope) == ("minted", "fr:idm:*")


def test_without_encryption_an_expiry_more_than_an_hour_ahead_is_a_miss(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    make_vendor(encrypt=False).vend(direct("fr:idm:*"), budget())
    item = _item(fresh_stack)
    item["expires_at"] = {"N": str(time.time() + 3 * 3600)}
    _put(fresh_stack, item)

    again = make_vendor(encrypt=False).vend(direct("fr:idm:*"), budget())
    assert again.tier == "minted"
    assert again.token.seconds_left(time.time()) <= 899


@pytest.mark.parametrize(
    "tamper",
    [
        lambda item: item.update(token_nonce={"B": b"1234"}),
        lambda item: item.update(token_key={"B": b"x"}),
        lambda item: item.update(token_ct={"S": "not binary"}),
        lambda item: item.pop("token_ct"),
        lambda item: item.update(expires_at={"S": "soon"}),
        lambda item: item.update(scope={"N": "7"}),
        lambda item: item.update(lifetime={"S": "long"}),
        lambda item: item.update(lease_until={"S": "forever"}),
        lambda item: item.update(lease_until={"N": str(time.time() + 10**6)}),
        lambda item: item.update(neg_until={"S": "x"}, neg_code={"N": "1"}),
        lambda item: item.update(refresh_not_before={"BOOL": True}),
    ],
)
def test_a_malformed_item_is_a_miss_and_never_an_error(
    make_vendor: Any, fresh_stack: LocalStack, tamper: Any
) -> None:
    FIGURES["faults"] += 1
    make_vendor().vend(direct("fr:idm:*"), budget())
    item = _item(fresh_stack)
    tamper(item)
    _put(fresh_stack, item)

    served = make_vendor().vend(direct("fr:idm:*"), budget(3))

    assert served.token.seconds_left(time.time()) > 800
    assert fresh_stack.standin.exchanges <= 2


# -- 6. a dripping AIC cannot hold a vend past its deadline -------------------------------------------
def test_a_dripping_token_endpoint_is_cut_off_at_the_deadline_and_the_lease_released(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["faults"] += 1
    fresh_stack.standin.set_sticky_fault(Fault("drip", delay=0.4))
    vendor = make_vendor()
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="no complete answer within the time left"):
        vendor.vend(direct("fr:idm:*"), Deadline.after(1.5, time.monotonic))
    elapsed = time.monotonic() - started

    assert elapsed < 2.5  # the drip alone would take 26 seconds
    assert "lease_until" not in _item(fresh_stack)


# -- 7. a refresh during an outage costs one attempt, then the fleet backs off -----------------------
def test_refresh_during_an_outage_makes_at_most_three_attempts_and_serves_everyone(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["faults"] += 1
    fleet = fleet_in_refresh_window(make_vendor, fresh_stack, Fault("status", status=503))
    containers, wall, metrics = fleet.containers, fleet.wall, fleet.metrics

    served = []
    for i in range(14):
        if i == 7:
            wall.advance(6)  # past the first 5 s backoff: one more attempt, then 10 s
        served.append(containers[i % 5].vend(direct("fr:idm:*"), budget()))

    assert fresh_stack.standin.token_requests <= 3
    assert all(v.token.access_token == fleet.token.access_token for v in served)
    item = _item(fresh_stack)
    assert float(item["refresh_backoff"]["N"]) == 10.0
    assert metrics.counts.get("StaleServed", 0) >= 1


# -- 8. a refused key is remembered per secret version -----------------------------------------------
def test_a_refused_key_is_remembered_fleet_wide_until_a_new_secret_version(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["faults"] += 1
    key_clock = FakeWall()
    stranger = new_rsa_key()
    CANARY.register_key(stranger)
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(stranger)])  # AIC no longer knows ours
    containers = [make_vendor(sleeps=[], key_clock=key_clock) for _ in range(3)]

    for i in range(10):
        with pytest.raises(UpstreamRejected) as refused:
            containers[i % 3].vend(direct("fr:idm:*"), budget())
    assert fresh_stack.standin.token_requests <= 2
    # Issue 22: the caller reads neither the account id nor the secret version; the log names both.
    assert fresh_stack.account_id not in refused.value.message
    assert "secret version" in refused.value.message
    assert "log" in refused.value.message

    # The operator rotates: a new secret version with the registered key is tried at once.
    fresh_stack.put_secret(fresh_stack.secret_for(stranger))
    key_clock.advance(11)
    served = containers[0].vend(direct("fr:idm:*"), budget())
    assert served.tier == "minted"


# -- 9. the lease write sets a TTL that outlives the lease -------------------------------------------
def test_taking_the_lease_on_an_idle_item_moves_its_ttl_past_the_lease(fresh_stack: LocalStack) -> None:
    key = _key(fresh_stack)
    _put(fresh_stack, {"pk": {"S": key}, "ttl": {"N": str(int(time.time()) - 600)}})  # idle, TTL passed
    table = TokenTable(fresh_stack.table_name, fresh_stack.client("dynamodb"), clock=time.time)

    assert table.try_lease(key, "me", 10.0, fresh_seconds=300).granted

    assert int(_item(fresh_stack)["ttl"]["N"]) >= time.time() + 10 + 60


# -- 10. hashed keys cannot be reached by a scope name ------------------------------------------------
def test_a_scope_named_like_a_hashed_key_reads_nothing_of_the_long_set(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    long_set = " ".join(f"x:{i:02d}:" + "s" * 100 for i in range(12))
    fresh_stack.standin.register_account(
        fresh_stack.account_id, [public_jwk(fresh_stack.key)], [*long_set.split(), "fr:idm:*"]
    )
    try:
        vendor = make_vendor()
        long_token = vendor.vend(direct(long_set), budget())
        digest = hashlib.sha256(" ".join(sorted(long_set.split())).encode()).hexdigest()
        with pytest.raises((UpstreamRejected, InvalidScope)):  # the stand-in does not grant it
            vendor.vend(direct(f"sha256:{digest}"), budget())
        assert long_token.token.scope == " ".join(sorted(long_set.split()))
    finally:
        from local.stack import DEFAULT_SCOPES

        fresh_stack.standin.register_account(
            fresh_stack.account_id, [public_jwk(fresh_stack.key)], DEFAULT_SCOPES
        )
