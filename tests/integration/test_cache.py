"""Issue 3: the memory and DynamoDB caches, refresh-ahead, stale-on-error, encryption at rest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.aic_standin import Fault
from local.stack import TENANT, LocalStack
from tests.integration.conftest import FakeWall, Recorder, budget, direct
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.kernel.errors import UpstreamRejected, UpstreamUnavailable

pytestmark = pytest.mark.integration


def _item(stack: LocalStack, scopes: tuple[str, ...]) -> dict[str, Any]:
    key = cache_key(TENANT, stack.secret_id, scopes)
    response = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"pk": {"S": key}})
    item: dict[str, Any] = response.get("Item", {})
    return item


def test_the_second_call_is_a_memory_hit(make_vendor: Any, fresh_stack: LocalStack) -> None:
    vendor = make_vendor()
    first = vendor.vend(direct("fr:idm:*"), budget())
    second = vendor.vend(direct("fr:idm:*"), budget())

    assert (first.tier, second.tier) == ("minted", "memory")
    assert second.token == first.token
    assert fresh_stack.standin.exchanges == 1


def test_another_container_gets_a_table_hit(make_vendor: Any, fresh_stack: LocalStack) -> None:
    first = make_vendor().vend(direct("fr:idm:*"), budget())
    second = make_vendor().vend(direct("fr:idm:*"), budget())

    assert second.tier == "table"
    assert second.token.access_token == first.token.access_token
    assert fresh_stack.standin.exchanges == 1


def test_spellings_of_one_scope_set_share_one_token(invoke: Any, fresh_stack: LocalStack) -> None:
    a = invoke({"scope": "fr:idm:* fr:am:*"})
    b = invoke({"scopes": ["fr:am:*", "fr:idm:*", "fr:am:*"]})
    c = invoke({"scope": "  fr:am:*\tfr:idm:*  "})

    assert a["access_token"] == b["access_token"] == c["access_token"]
    assert fresh_stack.standin.exchanges == 1


def test_no_superset_reuse(make_vendor: Any, fresh_stack: LocalStack) -> None:
    vendor = make_vendor()
    wide = vendor.vend(direct("fr:idm:* fr:am:*"), budget())
    narrow = vendor.vend(direct("fr:idm:*"), budget())

    assert narrow.token.access_token != wide.token.access_token
    assert narrow.token.scope == "fr:idm:*"
    assert fresh_stack.standin.exchanges == 2


def test_an_item_past_its_expiry_is_a_miss(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    make_vendor(wall=wall).vend(direct("fr:idm:*"), budget())
    wall.advance(900)  # moto, like DynamoDB before its sweep, still returns the item

    assert _item(fresh_stack, ("fr:idm:*",))
    vended = make_vendor(wall=wall).vend(direct("fr:idm:*"), budget())

    assert vended.tier == "minted"
    assert fresh_stack.standin.exchanges == 2


def test_the_item_ttl_is_the_token_expiry(make_vendor: Any, fresh_stack: LocalStack) -> None:
    vended = make_vendor().vend(direct("fr:idm:*"), budget())
    item = _item(fresh_stack, ("fr:idm:*",))

    assert int(item["ttl"]["N"]) == int(-(-vended.token.expires_at // 1))
    assert "lease_until" not in item


def test_refresh_ahead_refreshes_once_while_others_keep_the_cached_token(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    first = make_vendor(wall=wall).vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 250)  # 250 s left: inside the 300 s refresh-ahead window, above the 120 s minimum

    # Another container holds the lease for the refresh right now.
    from token_vendor.adapters.aws.item_format import LEASE_CLOCK_TOLERANCE
    from token_vendor.adapters.aws.token_table import TokenTable

    other = TokenTable(fresh_stack.table_name, fresh_stack.client("dynamodb"), clock=wall)
    key = cache_key(TENANT, fresh_stack.secret_id, ("fr:idm:*",))
    assert other.try_lease(key, "other-container", 5, fresh_seconds=300).granted
    served = make_vendor(wall=wall).vend(direct("fr:idm:*"), budget())
    assert served.token.access_token == first.token.access_token
    assert fresh_stack.standin.exchanges == 1

    # The other container died: its lease lapsed, by more than two containers' clocks may differ.
    wall.advance(5 + LEASE_CLOCK_TOLERANCE + 0.5)
    refreshed = make_vendor(wall=wall).vend(direct("fr:idm:*"), budget())
    again = make_vendor(wall=wall).vend(direct("fr:idm:*"), budget())

    assert refreshed.tier == "minted"
    assert again.tier == "table"
    assert again.token.access_token == refreshed.token.access_token != first.token.access_token
    assert fresh_stack.standin.exchanges == 2


def test_stale_on_error_serves_a_cached_token_that_is_still_good(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    metrics = Recorder()
    vendor = make_vendor(wall=wall, metrics=metrics, sleeps=[])
    first = vendor.vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 200)
    fresh_stack.standin.set_sticky_fault(Fault("status", status=503))

    served = vendor.vend(direct("fr:idm:*"), budget())

    assert served.tier == "stale"
    assert served.token == first.token
    assert metrics.counts["StaleServed"] == 1


def test_stale_is_not_served_below_the_validity_asked_for(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    vendor = make_vendor(wall=wall, sleeps=[])
    vendor.vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 200)
    fresh_stack.standin.set_sticky_fault(Fault("status", status=503))

    with pytest.raises(UpstreamUnavailable):
        vendor.vend(direct("fr:idm:*", min_validity=300), budget())


def test_minimum_validity_is_honoured(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    vendor = make_vendor(wall=wall, REFRESH_AHEAD_SECONDS="0")
    first = vendor.vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 500)  # 500 s left

    kept = vendor.vend(direct("fr:idm:*", min_validity=400), budget())
    renewed = vendor.vend(direct("fr:idm:*", min_validity=600), budget())

    assert kept.token == first.token
    assert renewed.tier == "minted"
    assert renewed.token.seconds_left(wall()) >= 600


def test_the_default_minimum_validity_applies(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    vendor = make_vendor(wall=wall, REFRESH_AHEAD_SECONDS="0", MIN_VALIDITY_SECONDS="120")
    first = vendor.vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 100)

    assert vendor.vend(direct("fr:idm:*"), budget()).token != first.token


def test_an_invalid_scope_answer_is_remembered_for_a_minute(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    vendor = make_vendor(wall=wall)
    for _ in range(3):
        with pytest.raises(UpstreamRejected, match="fr:iga:\\*"):
            vendor.vend(direct("fr:iga:*"), budget())
    with pytest.raises(UpstreamRejected):
        make_vendor(wall=wall).vend(direct("fr:iga:*"), budget())  # another container: from the table
    assert fresh_stack.standin.token_requests == 1

    wall.advance(61)
    with pytest.raises(UpstreamRejected):
        vendor.vend(direct("fr:iga:*"), budget())
    assert fresh_stack.standin.token_requests == 2


def test_with_encryption_the_item_does_not_hold_the_token(make_vendor: Any, fresh_stack: LocalStack) -> None:
    vended = make_vendor().vend(direct("fr:idm:*"), budget())
    item = _item(fresh_stack, ("fr:idm:*",))

    assert "token" not in item
    assert vended.token.access_token.encode() not in json.dumps(item, default=repr).encode()
    assert vended.token.access_token.encode() not in item["token_ct"]["B"]


def test_an_item_copied_under_another_key_does_not_decrypt(make_vendor: Any, fresh_stack: LocalStack) -> None:
    make_vendor().vend(direct("fr:idm:*"), budget())
    item = _item(fresh_stack, ("fr:idm:*",))
    item["pk"] = {"S": cache_key(TENANT, fresh_stack.secret_id, ("fr:am:*", "fr:idm:*"))}
    fresh_stack.client("dynamodb").put_item(TableName=fresh_stack.table_name, Item=item)

    vended = make_vendor().vend(direct("fr:idm:* fr:am:*"), budget())

    assert vended.tier == "minted"
    assert fresh_stack.standin.exchanges == 2


def test_a_table_hit_costs_no_kms_call_in_the_steady_state(make_vendor: Any, fresh_stack: LocalStack) -> None:
    calls: list[str] = []
    kms = fresh_stack.client("kms")
    kms.meta.events.register("before-call.kms.*", lambda model, **_: calls.append(model.name))
    writer = make_vendor(kms=kms)
    reader = make_vendor(kms=kms)
    writer.vend(direct("fr:idm:*"), budget())
    writer.vend(direct("fr:am:*"), budget())
    reader.vend(direct("fr:idm:*"), budget())
    before = len(calls)
    reader.vend(direct("fr:am:*"), budget())

    assert calls[:1] == ["GenerateDataKey"]
    assert calls.count("GenerateDataKey") == 1
    assert len(calls) == before  # the data key was unwrapped once and is reused


def test_without_encryption_the_token_is_stored_plainly_and_a_warning_logged(
    function_env: Any, invoke: Any, fresh_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    function_env(TOKEN_CACHE_KEY_ID="")
    with caplog.at_level("WARNING", logger="token_vendor"):
        invoke({"scope": "fr:idm:*"})

    assert "token" in _item(fresh_stack, ("fr:idm:*",))
    assert "stored unencrypted" in caplog.text
