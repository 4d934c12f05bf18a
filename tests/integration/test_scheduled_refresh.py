"""Issue 25: a scheduled refresh keeps every recently used token fresh, so callers never wait on AIC."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from local.aic_standin import Fault
from local.stack import TENANT, LocalStack
from tests.integration.conftest import FakeWall, Recorder, budget, direct
from tests.integration.test_hardening import _item
from token_vendor.cached_token import cache_key
from token_vendor.scheduled_refresh import MAX_REFRESHES_PER_RUN, ScheduledRefresher
from token_vendor.token_table import RecentScopeSet
from token_vendor.vending import TokenVendor

pytestmark = pytest.mark.integration


def _refresher(
    vendor: TokenVendor, wall: Any, metrics: Any = None, keep_warm: float = 3600
) -> ScheduledRefresher:
    return ScheduledRefresher(
        vendor,
        vendor.table,
        tenant=vendor.settings.tenant_fqdn,
        account_ref=vendor.account_ref,
        keep_warm_seconds=keep_warm,
        clock=wall,
        metrics=metrics or Recorder(),
    )


def test_a_due_token_is_refreshed_with_one_exchange_and_the_next_caller_waits_on_nothing(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    metrics = Recorder()
    first = make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget()).token
    wall.advance(899 - 270)  # inside the 300 s refresh-ahead window
    scheduler = make_vendor(wall=wall, sleeps=[])

    summary = _refresher(scheduler, wall, metrics).run(budget())

    assert len(summary.refreshed) == 1
    assert fresh_stack.standin.exchanges == 2
    assert metrics.counts["ScheduledRefreshes"] == 1
    caller = make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())
    assert caller.tier == "table"  # no exchange inside the caller's request
    assert caller.token.access_token != first.access_token
    assert fresh_stack.standin.exchanges == 2


def test_a_second_run_right_after_refreshes_nothing(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 270)
    refresher = _refresher(make_vendor(wall=wall, sleeps=[]), wall)
    assert len(refresher.run(budget()).refreshed) == 1

    again = refresher.run(budget())

    assert (len(again.refreshed), again.not_due, again.failed) == (0, 1, 0)
    assert fresh_stack.standin.exchanges == 2


def test_what_falls_due_before_the_next_run_is_refreshed_now(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 330)  # 330 s left: not due yet, but due within the next minute

    summary = _refresher(make_vendor(wall=wall, sleeps=[]), wall).run(budget())

    assert len(summary.refreshed) == 1


def test_an_idle_scope_set_is_left_to_expire(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 270)  # due, but nobody vended it within KEEP_WARM_SECONDS=300

    summary = _refresher(make_vendor(wall=wall, sleeps=[]), wall, keep_warm=300).run(budget())

    assert (summary.considered, len(summary.refreshed)) == (0, 0)
    assert fresh_stack.standin.exchanges == 1


def test_the_refreshers_own_mint_does_not_keep_a_set_warm(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())
    used_at = float(_item(fresh_stack)["last_vended"]["N"])
    wall.advance(899 - 270)

    _refresher(make_vendor(wall=wall, sleeps=[]), wall).run(budget())

    assert float(_item(fresh_stack)["last_vended"]["N"]) == used_at


def test_with_aic_down_the_refresher_backs_off_like_any_refresh(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    metrics = Recorder()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 270)
    fresh_stack.standin.reset_counters()
    fresh_stack.standin.set_sticky_fault(Fault("status", status=503))
    refresher = _refresher(make_vendor(wall=wall, sleeps=[]), wall, metrics)

    first = refresher.run(budget())
    second = refresher.run(budget())  # within the fleet's 5 s backoff

    assert first.failed == 1
    assert fresh_stack.standin.token_requests == 1  # one attempt, then the backoff holds
    assert (second.failed, second.not_due) == (0, 1)  # the cached token serves while the fleet backs off
    assert metrics.counts["ScheduledRefreshFailures"] == 1
    assert float(_item(fresh_stack)["refresh_backoff"]["N"]) == 5.0


def test_recording_use_costs_one_write_per_container_per_scope_set_per_five_minutes(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    class CountingWrites:
        def __init__(self, client: Any) -> None:
            self.client = client
            self.records = 0

        def update_item(self, **kwargs: Any) -> Any:
            if "last_vended" in kwargs["UpdateExpression"]:
                self.records += 1
            return self.client.update_item(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

    wall = FakeWall()
    counting = CountingWrites(fresh_stack.client("dynamodb"))
    vendor = make_vendor(wall=wall, sleeps=[], dynamodb=counting)
    for _ in range(299):
        vendor.vend(direct("fr:idm:*"), budget())
        wall.advance(1)
    assert counting.records == 0  # the mint stored last_vended itself; then memory hits write nothing
    wall.advance(2)
    vendor.vend(direct("fr:idm:*"), budget())
    assert counting.records == 1


def test_the_refresher_and_a_caller_racing_make_one_exchange(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())
    wall.advance(899 - 270)
    refresher = _refresher(make_vendor(wall=wall), wall)
    callers = [make_vendor(wall=wall) for _ in range(4)]
    barrier = threading.Barrier(5)

    def caller(vendor: TokenVendor) -> None:
        barrier.wait()
        vendor.vend(direct("fr:idm:*"), budget())

    threads = [threading.Thread(target=caller, args=(v,)) for v in callers]
    for thread in threads:
        thread.start()
    barrier.wait()
    refresher.run(budget())
    for thread in threads:
        thread.join()

    assert fresh_stack.standin.exchanges == 2  # the first mint and one refresh, whoever won the lease


def test_an_altered_item_is_never_refreshed_for_another_key(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())
    fresh_stack.client("dynamodb").update_item(
        TableName=fresh_stack.table_name,
        Key={"pk": {"S": cache_key(TENANT, fresh_stack.secret_id, ("fr:idm:*",))}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "scope"},
        ExpressionAttributeValues={":s": {"S": "fr:am:*"}},
    )
    wall.advance(899 - 270)

    summary = _refresher(make_vendor(wall=wall, sleeps=[]), wall).run(budget())

    assert (summary.unreadable, len(summary.refreshed)) == (1, 0)


class _FakeVendor:
    def __init__(self) -> None:
        self.calls = 0

    def fresh_seconds(self, lifetime: float) -> float:
        return 300.0

    def refresh_ahead(self, scopes: Any, lookahead: float, deadline: Any) -> tuple[str, str | None]:
        self.calls += 1
        return "stale", None  # AIC is down: every attempt fails


class _FakeTable:
    def recently_vended(self, since: float) -> list[RecentScopeSet]:
        return [
            RecentScopeSet(cache_key("t.example", "a", (f"s{i}",)), f"s{i}", 100.0, 899.0) for i in range(40)
        ]


def test_attempts_per_run_are_bounded() -> None:
    vendor = _FakeVendor()
    refresher = ScheduledRefresher(
        vendor, _FakeTable(), tenant="t.example", account_ref="a", keep_warm_seconds=3600, clock=lambda: 0.0,
        metrics=Recorder(),
    )  # fmt: skip

    summary = refresher.run(budget())

    assert vendor.calls == MAX_REFRESHES_PER_RUN
    assert (summary.failed, summary.skipped) == (MAX_REFRESHES_PER_RUN, 40 - MAX_REFRESHES_PER_RUN)


def test_the_handler_answers_counts_never_a_token(
    function_env: Any, invoke: Any, fresh_stack: LocalStack
) -> None:
    from token_vendor.errors import InvalidRequest

    function_env(DIRECT_INVOKE_SCOPES="")  # the schedule needs none: it hands nothing out
    result = invoke({"refresh": "due"})

    assert result["refresh"] == "done"
    assert "access_token" not in result
    with pytest.raises(InvalidRequest, match=r'exactly \{"refresh": "due"\}'):
        invoke({"refresh": "now"})


def test_a_container_that_reads_a_recent_use_from_the_item_writes_none(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """The fleet, not each container, records a use at most every five minutes (and a cold start's first
    vend, a table hit, costs no write)."""
    wall = FakeWall()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())  # the mint records the use
    writes: list[str] = []
    client = fresh_stack.client("dynamodb")

    class Recording:
        def update_item(self, **kwargs: Any) -> Any:
            writes.append(kwargs["UpdateExpression"])
            return client.update_item(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

    others = [make_vendor(wall=wall, sleeps=[], dynamodb=Recording()) for _ in range(5)]
    for vendor in others:
        assert vendor.vend(direct("fr:idm:*"), budget()).tier == "table"

    assert writes == []
