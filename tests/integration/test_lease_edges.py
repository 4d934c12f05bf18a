"""Issue 16: the lease protocol's edge cases: a slow AIC outliving the lease, a rejection during a refresh,
tokens shorter than asked for, and too little time left."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from local.aic_standin import Fault
from local.stack import LocalStack
from tests.integration.conftest import FakeWall, budget, direct, fleet_in_refresh_window
from tests.leak_canary import FIGURES
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import InvalidRequest, UpstreamRejected, UpstreamUnavailable

pytestmark = pytest.mark.integration

INVALID_SCOPE = json.dumps(
    {"error": "invalid_scope", "error_description": "Unsupported scope for service account: fr:idm:*"}
).encode()


def test_a_rejection_during_a_refresh_serves_the_cached_token_fleet_wide_with_one_attempt(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["faults"] += 1
    fleet = fleet_in_refresh_window(make_vendor, fresh_stack, Fault("status", status=400, body=INVALID_SCOPE))
    containers, metrics = fleet.containers, fleet.metrics

    served = [containers[i % 5].vend(direct("fr:idm:*"), budget()) for i in range(14)]

    assert fresh_stack.standin.token_requests == 1  # the rejection is remembered for the fleet
    assert all(v.token.access_token == fleet.token.access_token for v in served)
    assert metrics.counts["StaleServed"] >= 13

    # For a caller the cached token cannot serve, the remembered rejection is the answer, without asking AIC.
    with pytest.raises(UpstreamRejected, match="not granted"):
        containers[3].vend(direct("fr:idm:*", min_validity=600), budget())
    assert fresh_stack.standin.token_requests == 1


def test_a_token_shorter_than_asked_for_is_refused_with_both_figures_and_not_minted_again(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["faults"] += 1
    fresh_stack.standin.set_token_lifetime(100)
    vendor = make_vendor(MIN_VALIDITY_SECONDS="30")

    for _ in range(3):
        with pytest.raises(InvalidRequest, match=r"asks for 600 s.*live 100 s"):
            vendor.vend(direct("fr:idm:*", min_validity=600), budget())
    served = make_vendor(MIN_VALIDITY_SECONDS="30").vend(direct("fr:idm:*"), budget())  # a need it meets

    assert fresh_stack.standin.exchanges == 1
    assert served.tier == "table"
    assert 90 <= served.token.seconds_left(time.time()) <= 100


def test_a_short_lived_token_is_refreshed_at_half_its_life_not_on_every_call(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    fresh_stack.standin.set_token_lifetime(100)
    wall = FakeWall()
    vendor = make_vendor(wall=wall, MIN_VALIDITY_SECONDS="30")
    tiers = [vendor.vend(direct("fr:idm:*"), budget()).tier for _ in range(3)]
    wall.advance(55)  # past half its life: one refresh
    tiers.append(vendor.vend(direct("fr:idm:*"), budget()).tier)

    assert tiers == ["minted", "memory", "memory", "minted"]
    assert fresh_stack.standin.exchanges == 2


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _count_calls(client: Any) -> dict[str, int]:
    calls: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        calls[model.name] = calls.get(model.name, 0) + 1

    client.meta.events.register("before-call.*.*", count)
    return calls


def test_too_little_time_left_fails_fast_before_any_network_call(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    dynamodb = fresh_stack.client("dynamodb")
    calls = _count_calls(dynamodb)
    clock = Monotonic()
    vendor = make_vendor(dynamodb=dynamodb)

    with pytest.raises(UpstreamUnavailable, match="too little time left"):
        vendor.vend(direct("fr:idm:*"), Deadline.after(0.1, clock))

    assert calls == {}
    assert fresh_stack.standin.token_requests == 0


def test_the_poll_loop_rechecks_the_deadline_after_every_sleep(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    from token_vendor.adapters.aws.item_format import cache_key
    from token_vendor.adapters.aws.token_table import TokenTable

    # Another container holds the lease and never finishes.
    key = cache_key("openam-local-standin.id.forgerock.io", fresh_stack.secret_id, ("fr:idm:*",))
    TokenTable(fresh_stack.table_name, fresh_stack.client("dynamodb"), clock=time.time).try_lease(
        key, "someone-else", 10.0, fresh_seconds=300
    )
    dynamodb = fresh_stack.client("dynamodb")
    calls = _count_calls(dynamodb)
    clock = Monotonic()
    vendor = make_vendor(dynamodb=dynamodb)
    vendor.context.clocks.sleep = lambda seconds: clock.sleep(
        seconds + 0.3
    )  # each sleep overruns (a brownout)

    with pytest.raises(UpstreamUnavailable, match="did not finish in time"):
        vendor.vend(direct("fr:idm:*"), Deadline.after(1.0, clock))

    assert clock.now <= 1000.0 + 1.0 + 0.5 + 0.3  # no call started once the budget was spent
    assert fresh_stack.standin.token_requests == 0
    assert calls["GetItem"] <= 3


def test_a_holder_that_outlived_its_lease_cannot_release_the_next_holders_lease(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Issue 33, item 6: a release is fenced by the holder's value like a store. A holder whose lease lapsed
    and was taken over gives back nothing of the next holder's: the lease stays held, and the late holder's
    rejection or backoff is not written over the next holder's work."""
    from token_vendor.adapters.aws.item_format import LEASE_CLOCK_TOLERANCE, cache_key
    from token_vendor.adapters.aws.table_item import Rejection

    wall = FakeWall()
    vendor = make_vendor(wall=wall)
    table = vendor.table
    key = cache_key(vendor.settings.tenant_fqdn, vendor.account_ref, ("fr:idm:*",))
    assert table.try_lease(key, "late-holder", 1.0, None).granted
    wall.advance(1.0 + LEASE_CLOCK_TOLERANCE + 0.1)
    assert table.try_lease(key, "next-holder", 10.0, None).granted

    rejection = Rejection("invalid_scope", ("fr:idm:*",), wall() + 60, "*")
    table.release(key, "late-holder", rejection, backoff=30.0)

    entry = table.read(key)
    assert entry.lease_held(wall())  # still the next holder's
    assert entry.rejection is None
    assert entry.refresh_backoff is None
    assert not table.try_lease(key, "third", 10.0, None).granted
    table.release(key, "next-holder")
    assert table.try_lease(key, "third", 10.0, None).granted  # the live holder's release does free it
