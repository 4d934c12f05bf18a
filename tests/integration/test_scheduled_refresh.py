"""Issue 25: a scheduled refresh keeps every recently used token fresh, so callers never wait on AIC."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from local.aic_standin import Fault
from local.stack import TENANT, LocalStack
from tests.integration.conftest import FakeWall, Recorder, budget, direct
from tests.integration.test_hostile_writers_and_callers import _item
from token_vendor.adapters.aws.bounded_client import BoundedClient
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.adapters.aws.token_table import RecentScopeSet, TokenTable
from token_vendor.adapters.aws.use_records import ScanSlice, refresh_counter_key
from token_vendor.kernel.deadline import Deadline
from token_vendor.vend.scheduled_refresh import (
    MAX_REFRESHES_PER_MINUTE,
    MAX_REFRESHES_PER_RUN,
    MAX_SCAN_PAGES_PER_RUN,
    ScheduledRefresher,
)
from token_vendor.vend.vending import TokenVendor

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
    def __init__(self, count: int = 40) -> None:
        self.count = count

    def recently_vended(self, since: float, deadline: Any, **_: Any) -> ScanSlice:
        return ScanSlice(
            [
                RecentScopeSet(cache_key("t.example", "a", (f"s{i}",)), f"s{i}", 100.0, 899.0)
                for i in range(self.count)
            ]
        )

    def take_refresh_slot(self, key: str, limit: int) -> bool:
        return True


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
    from token_vendor.kernel.errors import InvalidRequest

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


# -- issue 30: the run is bounded, whatever the table holds and however many runs are sent -------------
class _LambdaContext:
    """What Lambda hands the handler: the time left, here on the test's own monotonic clock."""

    def __init__(self, clock: _Monotonic, milliseconds: float) -> None:
        self._clock = clock
        self._ends = clock() + milliseconds / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._ends - self._clock()) * 1000)


class _Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _SlowPages:
    """The table, with every Scan page taking ``seconds`` (a 1 MB page at a few MB/s) on ``clock``."""

    def __init__(self, client: Any, clock: _Monotonic, seconds: float) -> None:
        self.client = client
        self.clock = clock
        self.seconds = seconds
        self.pages = 0

    def scan(self, **kwargs: Any) -> Any:
        self.pages += 1
        self.clock.now += self.seconds
        return self.client.scan(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _plant_big_idle_items(stack: LocalStack, count: int, size: int = 350_000) -> None:
    """What a table writer can do: large items nobody uses (a DynamoDB page holds at most 1 MB of them)."""
    client = stack.client("dynamodb")
    for i in range(count):
        client.put_item(
            TableName=stack.table_name,
            Item={"pk": {"S": f"planted-{i:03d}"}, "scope": {"S": "fr:idm:*"}, "blob": {"S": "x" * size}},
        )


def _bounded_vendor(
    make_vendor: Any, stack: LocalStack, wall: Any, clock: _Monotonic
) -> tuple[Any, _SlowPages]:
    slow = _SlowPages(stack.client("dynamodb"), clock, seconds=0.25)
    vendor = make_vendor(wall=wall, sleeps=[], dynamodb=BoundedClient(slow, sleep=lambda s: None))
    return vendor, slow


def test_planted_large_items_cannot_make_a_run_pass_its_deadline(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall, clock = FakeWall(), _Monotonic()
    _plant_big_idle_items(fresh_stack, 40)  # about 20 pages of 1 MB: 5 s of reading
    vendor, slow = _bounded_vendor(make_vendor, fresh_stack, wall, clock)
    deadline = Deadline.from_context(_LambdaContext(clock, 3000), clock)

    summary = _refresher(vendor, wall).run(deadline)

    assert clock() <= deadline.at, (
        f"the run read {slow.pages} pages and ended {clock() - deadline.at:.2f} s late"
    )
    assert summary.as_result()["refresh"] == "done"
    assert not summary.complete
    assert 0 < summary.pages == slow.pages <= MAX_SCAN_PAGES_PER_RUN


def test_a_large_table_is_covered_over_successive_runs(make_vendor: Any, fresh_stack: LocalStack) -> None:
    """Each run reads a bounded slice and the next carries on, so a scope set in use behind the planted
    items is still refreshed."""
    wall, clock = FakeWall(), _Monotonic()
    make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget())  # in use
    _plant_big_idle_items(fresh_stack, 40)
    wall.advance(899 - 270)  # due
    vendor, slow = _bounded_vendor(make_vendor, fresh_stack, wall, clock)
    refresher = _refresher(vendor, wall)

    pages_per_run, refreshed = [], 0
    for _ in range(8):
        before = slow.pages
        summary = refresher.run(Deadline.from_context(_LambdaContext(clock, 3000), clock))
        pages_per_run.append(slow.pages - before)
        refreshed += len(summary.refreshed)
        clock.now += 60

    assert max(pages_per_run) <= 5  # half of the 2.5 s at 0.25 s a page: never the whole table at once
    assert refreshed == 1
    assert fresh_stack.standin.exchanges == 2


class _StoppedWall:
    """Wall time that moves only when the test says: one second into the current minute."""

    def __init__(self) -> None:
        self.now = (time.time() // 60) * 60 + 1.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _plant_due_scope_sets(stack: LocalStack, now: float, count: int) -> None:
    client = stack.client("dynamodb")
    for i in range(count):
        scope = f"s{i:02d}"
        client.put_item(
            TableName=stack.table_name,
            Item={
                "pk": {"S": cache_key("t.example", "a", (scope,))},
                "scope": {"S": scope},
                "expires_at": {"N": repr(now + 100)},  # inside the refresh window
                "lifetime": {"N": "899.0"},
                "last_vended": {"N": repr(now - 10)},
            },
        )


def test_concurrent_runs_together_refresh_at_most_the_fleets_bound_a_minute(fresh_stack: LocalStack) -> None:
    """Anyone who may invoke may send a run: three at once, and more in the same minute, make at most
    MAX_REFRESHES_PER_MINUTE attempts between them; the next minute has its own."""
    wall = _StoppedWall()  # a real clock could cross a minute's end mid-test
    _plant_due_scope_sets(fresh_stack, wall(), 40)
    vendors = [_FakeVendor() for _ in range(4)]
    runs = [
        ScheduledRefresher(
            vendor,
            TokenTable(fresh_stack.table_name, fresh_stack.client("dynamodb"), clock=wall),
            tenant="t.example",
            account_ref="a",
            keep_warm_seconds=3600,
            clock=wall,
            metrics=Recorder(),
        )
        for vendor in vendors
    ]
    barrier = threading.Barrier(3)

    def run(refresher: ScheduledRefresher) -> None:
        barrier.wait()
        refresher.run(budget())

    threads = [threading.Thread(target=run, args=(r,)) for r in runs[:3]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs[3].run(budget())

    assert sum(v.calls for v in vendors) == MAX_REFRESHES_PER_MINUTE
    wall.advance(60)
    runs[3].run(budget())
    assert sum(v.calls for v in vendors) == 2 * MAX_REFRESHES_PER_MINUTE


def test_a_planted_refresh_count_holds_for_at_most_its_minute(fresh_stack: LocalStack) -> None:
    wall = _StoppedWall()
    _plant_due_scope_sets(fresh_stack, wall(), 3)
    client = fresh_stack.client("dynamodb")
    client.put_item(
        TableName=fresh_stack.table_name,
        Item={
            "pk": {"S": refresh_counter_key("t.example", "a")},
            "refresh_window": {"N": str(10**12)},  # far in the future
            "refresh_count": {"N": "999"},
        },
    )
    vendor = _FakeVendor()
    refresher = ScheduledRefresher(
        vendor, TokenTable(fresh_stack.table_name, client, clock=wall), tenant="t.example", account_ref="a",
        keep_warm_seconds=3600, clock=wall, metrics=Recorder(),
    )  # fmt: skip

    summary = refresher.run(budget())

    assert vendor.calls == 3
    assert summary.fleet_limited == 0


@pytest.mark.parametrize("planted", ["-1000000000", "0.5", "-1"])
def test_a_planted_count_below_one_does_not_lift_the_fleet_bound(
    fresh_stack: LocalStack, planted: str
) -> None:
    """A count the vendor never writes (it opens a window at 1) is malformed: the window is opened afresh,
    not counted from below zero, so a table writer cannot grant the fleet more than its refreshes a minute."""
    wall = _StoppedWall()
    _plant_due_scope_sets(fresh_stack, wall(), MAX_REFRESHES_PER_MINUTE)
    client = fresh_stack.client("dynamodb")
    client.put_item(
        TableName=fresh_stack.table_name,
        Item={
            "pk": {"S": refresh_counter_key("t.example", "a")},
            "refresh_window": {"N": str(int(wall() // 60))},  # this minute
            "refresh_count": {"N": planted},
        },
    )
    vendors = [_FakeVendor(), _FakeVendor()]
    for vendor in vendors:  # two runs in the same minute: together at most the fleet's bound
        ScheduledRefresher(
            vendor, TokenTable(fresh_stack.table_name, client, clock=wall), tenant="t.example",
            account_ref="a", keep_warm_seconds=3600, clock=wall, metrics=Recorder(),
        ).run(budget())  # fmt: skip

    assert sum(v.calls for v in vendors) == MAX_REFRESHES_PER_MINUTE
