"""Issue 11: a token AIC stops honouring is retired fleet-wide on a caller's report, single flight."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.aic_standin import Fault
from local.lambda_context import LocalContext
from local.stack import LocalStack
from tests.integration.conftest import FakeWall, Recorder, budget
from tests.integration.test_http import POLICY, load
from token_vendor.adapters.aws.table_item import TableEntry
from token_vendor.kernel.cached_token import fingerprint
from token_vendor.kernel.errors import InvalidRequest, UpstreamUnavailable
from token_vendor.kernel.scopes import normalise_scopes
from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest

pytestmark = pytest.mark.integration


def report(scope: str, token: str) -> VendRequest:
    return VendRequest(normalise_scopes(scope), None, DIRECT_CALLER, fingerprint(token))


def plain(scope: str) -> VendRequest:
    return VendRequest(normalise_scopes(scope), None, DIRECT_CALLER)


def test_a_128_way_report_storm_causes_exactly_one_exchange(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    metrics = Recorder()
    vendors = [make_vendor(metrics=metrics) for _ in range(8)]
    old = vendors[0].vend(plain("fr:idm:*"), budget()).token.access_token
    for vendor in vendors[1:]:
        vendor.vend(plain("fr:idm:*"), budget())  # every container holds the old token in memory
    fresh_stack.standin.reset_counters()
    barrier = threading.Barrier(128)

    def ask(vendor: Any) -> Any:
        barrier.wait()
        return vendor.vend(report("fr:idm:*", old), budget(15))

    with ThreadPoolExecutor(max_workers=128) as pool:
        results = [f.result(timeout=30) for f in [pool.submit(ask, v) for v in vendors for _ in range(16)]]

    assert fresh_stack.standin.exchanges == 1
    tokens = {r.token.access_token for r in results}
    assert len(tokens) == 1
    assert old not in tokens
    assert metrics.counts["TokenRetired"] == 1


def test_a_late_report_of_an_already_replaced_token_mints_nothing(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    first, second = make_vendor(), make_vendor()
    old = first.vend(plain("fr:idm:*"), budget()).token.access_token
    new = first.vend(report("fr:idm:*", old), budget())
    fresh_stack.standin.reset_counters()

    late = second.vend(report("fr:idm:*", old), budget())

    assert late.token.access_token == new.token.access_token
    assert late.retired is None
    assert fresh_stack.standin.exchanges == 0


def test_a_scope_set_is_retired_at_most_once_per_interval(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    metrics = Recorder()
    vendor = make_vendor(wall=wall, metrics=metrics, MIN_REFRESH_INTERVAL_SECONDS="30")
    first = vendor.vend(plain("fr:idm:*"), budget()).token.access_token
    second = vendor.vend(report("fr:idm:*", first), budget()).token.access_token
    fresh_stack.standin.reset_counters()

    wall.advance(10)  # within the interval: the current token is served, nothing minted
    limited = make_vendor(wall=wall, metrics=metrics).vend(report("fr:idm:*", second), budget())
    assert (limited.token.access_token, limited.retire_rate_limited) == (second, True)
    assert fresh_stack.standin.exchanges == 0
    assert metrics.counts["RetireRateLimited"] == 1

    wall.advance(25)  # past it: one more retirement
    third = make_vendor(wall=wall, metrics=metrics).vend(report("fr:idm:*", second), budget())
    assert third.token.access_token not in (first, second)
    assert fresh_stack.standin.exchanges == 1


@pytest.mark.parametrize("value", ["ABCDEF012345", "abc", "0123456789abc", 123456789012, "g123456789ab", ""])
def test_a_malformed_fingerprint_is_invalid_request(invoke: Any, fresh_stack: LocalStack, value: Any) -> None:
    with pytest.raises(InvalidRequest, match="fingerprint"):
        invoke({"scope": "fr:idm:*", "rejected": value})
    assert fresh_stack.standin.token_requests == 0


def _http(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from token_vendor import app

    response = app.http_handler(event, LocalContext())
    return response["statusCode"], json.loads(response["body"])


def _get(scope: str, rejected: str, caller: str | None = None) -> dict[str, Any]:
    event = load("rest_get.json")
    event["queryStringParameters"] = {"scope": scope, "rejected": rejected}
    event["multiValueQueryStringParameters"] = {"scope": [scope], "rejected": [rejected]}
    if caller:
        event["requestContext"]["identity"]["userArn"] = caller
    return event


def test_http_callers_report_with_a_query_parameter_and_the_policy_applies_first(
    function_env: Any, fresh_stack: LocalStack
) -> None:
    function_env(CALLER_POLICY=POLICY)
    status, body = _http(_get("fr:idm:*", "0123456789ab"))
    assert status == 200  # nothing to retire: served the current (here: a new) token
    old = body["access_token"]
    fresh_stack.standin.reset_counters()

    status, body = _http(_get("fr:idm:*", fingerprint(old), "arn:aws:sts::123456789012:assumed-role/x/s"))
    assert (status, body["error"]) == (403, "access_denied")
    assert fresh_stack.standin.token_requests == 0

    status, body = _http(_get("fr:idm:*", "NOT-A-FINGERPRINT"))
    assert (status, body["error"]) == (400, "invalid_request")

    status, body = _http(_get("fr:idm:*", fingerprint(old)))
    assert status == 200
    assert body["access_token"] != old
    assert fresh_stack.standin.exchanges == 1


def test_a_retirement_racing_a_refresh_ahead_is_still_one_exchange(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    vendors = [make_vendor(wall=wall) for _ in range(8)]
    old = vendors[0].vend(plain("fr:idm:*"), budget()).token.access_token
    wall.advance(899 - 200)  # inside the refresh-ahead window
    fresh_stack.standin.reset_counters()
    barrier = threading.Barrier(16)

    def ask(i: int) -> Any:
        barrier.wait()
        request = report("fr:idm:*", old) if i % 2 else plain("fr:idm:*")
        return vendors[i % 8].vend(request, budget(15))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(ask, range(16)))

    assert fresh_stack.standin.exchanges == 1
    reporters = [r for i, r in enumerate(results) if i % 2]
    assert all(r.token.access_token != old for r in reporters)


def test_if_the_replacement_cannot_be_minted_reporters_get_unavailable_and_others_are_served(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    vendor, other = make_vendor(sleeps=[]), make_vendor(sleeps=[])
    old = vendor.vend(plain("fr:idm:*"), budget()).token.access_token
    fresh_stack.standin.set_sticky_fault(Fault("status", status=503))

    with pytest.raises(UpstreamUnavailable):
        vendor.vend(report("fr:idm:*", old), budget())
    assert other.vend(plain("fr:idm:*"), budget()).token.access_token == old  # make-before-break


def test_an_item_whose_stored_fingerprint_was_altered_cannot_loop_a_reporter(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """A table writer changes the item's clear fingerprint: the retirement's condition then never holds.
    The reporter gets a retryable error promptly instead of spinning until its deadline."""
    from token_vendor.adapters.aws.item_format import cache_key

    vendor = make_vendor(sleeps=[])
    old = vendor.vend(plain("fr:idm:*"), budget()).token.access_token
    key = cache_key("openam-local-standin.id.forgerock.io", fresh_stack.secret_id, ("fr:idm:*",))
    dynamodb = fresh_stack.client("dynamodb")
    item = dynamodb.get_item(TableName=fresh_stack.table_name, Key={"pk": {"S": key}})["Item"]
    item["fingerprint"] = {"S": "000000000000"}
    dynamodb.put_item(TableName=fresh_stack.table_name, Item=item)

    with pytest.raises(UpstreamUnavailable, match="could not be retired now"):
        make_vendor(sleeps=[]).vend(report("fr:idm:*", old), budget())
    assert fresh_stack.standin.exchanges == 1


def test_a_refresh_keeps_the_last_retirement_it_did_not_read(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Issue 33, item 6: a refresh that read the item before a retirement, and won the lease after it,
    must not erase that retirement when it stores: the fleet's rate limit (here 840 s) would go with it,
    and the next report would retire the refreshed token at once."""
    wall = FakeWall()
    settings = {"MIN_REFRESH_INTERVAL_SECONDS": "840"}
    reporter, refresher = make_vendor(wall=wall, **settings), make_vendor(wall=wall, **settings)
    old = reporter.vend(plain("fr:idm:*"), budget()).token.access_token
    refresher.context.read_table = lambda key: TableEntry(None, None, None)  # type: ignore[method-assign]
    reporter.vend(report("fr:idm:*", old), budget())  # retired; its replacement stored
    wall.advance(650)  # the replacement is due for a refresh-ahead
    refreshed = refresher.vend(plain("fr:idm:*"), budget()).token.access_token  # read nothing, won the lease
    fresh_stack.standin.reset_counters()

    wall.advance(10)  # 660 s after the retirement: within the interval
    limited = make_vendor(wall=wall, **settings).vend(report("fr:idm:*", refreshed), budget())

    assert limited.retire_rate_limited
    assert limited.token.access_token == refreshed
    assert fresh_stack.standin.exchanges == 0
