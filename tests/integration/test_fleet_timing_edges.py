"""Issue 24: what the stronger simulation found in the vendor, each pinned by a test on the local stack.

Each was a seed of ``make simulate`` first (docs/decisions.md, "Simulation"): clocks that differ by a few
seconds, a slow DynamoDB, a retirement while AIC refuses the scope set, a token shorter than twice the
refresh-ahead window, and a holder that minted to the last moment of its deadline.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from local.aic_standin import Fault
from local.stack import LocalStack
from tests.integration.conftest import FakeWall, budget, direct
from tests.integration.test_retirement import report
from token_vendor.adapters.aws.item_format import LEASE_CLOCK_TOLERANCE, cache_key
from token_vendor.adapters.aws.table_item import TableEntry
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import UpstreamRejected, UpstreamUnavailable
from token_vendor.vend.context import MIN_WORK_SECONDS
from token_vendor.vend.fleet_lease import exchange_deadline

pytestmark = pytest.mark.integration

INVALID_SCOPE = json.dumps(
    {"error": "invalid_scope", "error_description": "Unsupported scope for service account: fr:idm:*"}
).encode()


def _key(vendor: Any, scope: str = "fr:idm:*") -> str:
    return cache_key(vendor.settings.tenant_fqdn, vendor.account_ref, (scope,))


def test_a_lapsed_lease_is_taken_over_only_when_every_clock_agrees_it_lapsed(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Seed 37 (first seen at 16): a holder whose clock ran 2 s behind was taken over mid-exchange by a
    container 1 s ahead."""
    wall = FakeWall()
    table = make_vendor(wall=wall).table
    key = _key(make_vendor())
    assert table.try_lease(key, "holder-1", 1.0, None).granted

    wall.advance(1.0 + LEASE_CLOCK_TOLERANCE - 0.5)  # over by the taker's clock, by less than clocks differ
    assert not table.try_lease(key, "holder-2", 10.0, None).granted
    wall.advance(1.0)
    assert table.try_lease(key, "holder-2", 10.0, None).granted


def test_a_retirement_recorded_by_a_clock_a_little_ahead_still_rate_limits(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Seed 508: a retirement 3 s 'in the future' by the reader's clock was read as planted, and ignored."""
    ahead, behind = FakeWall(), FakeWall()
    ahead.advance(3.0)
    first, second = make_vendor(wall=ahead), make_vendor(wall=behind)
    old = first.vend(direct("fr:idm:*"), budget()).token.access_token
    new = first.vend(report("fr:idm:*", old), budget()).token.access_token  # retired, by the clock ahead
    fresh_stack.standin.reset_counters()

    served = second.vend(report("fr:idm:*", new), budget())

    assert served.retire_rate_limited
    assert served.token.access_token == new
    assert fresh_stack.standin.exchanges == 0


def test_a_report_while_aic_refuses_the_scope_set_asks_aic_once(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Seed 13: every report of a refused scope set cost AIC another rejection."""
    vendors = [make_vendor() for _ in range(3)]
    old = vendors[0].vend(direct("fr:idm:*"), budget()).token.access_token
    fresh_stack.standin.reset_counters()
    fresh_stack.standin.set_sticky_fault(Fault("status", status=400, body=INVALID_SCOPE))

    for vendor in vendors:
        with pytest.raises(UpstreamRejected):
            vendor.vend(report("fr:idm:*", old), budget())

    assert fresh_stack.standin.token_requests == 1  # the replacement's rejection is remembered fleet-wide


def test_the_lease_winner_serves_a_short_lived_token_stored_a_moment_ago(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Seed 290: a caller that had read nothing took the lease over a 300 s token stored a moment ago (the
    lease judges by the 300 s refresh-ahead window) and minted again."""
    fresh_stack.standin.set_token_lifetime(300)
    first, second = make_vendor(), make_vendor()
    stored = first.vend(direct("fr:idm:*"), budget()).token
    fresh_stack.standin.reset_counters()
    # As if it read the item before the store: nothing there.
    second.context.read_table = lambda key: TableEntry(None, None, None)  # type: ignore[method-assign]

    served = second.vend(direct("fr:idm:*"), budget())

    assert served.token.access_token == stored.access_token
    assert fresh_stack.standin.exchanges == 0
    assert first.table.try_lease(_key(first), "anyone", 10.0, None).granted  # the winner gave it back


def test_a_holder_keeps_time_to_store_what_it_mints() -> None:
    """Seed 4125: a holder that minted to the last moment of its deadline could not store the token; its
    lease lapsed and the next caller minted again."""
    now = [100.0]
    deadline = Deadline(110.0, lambda: now[0])

    work = exchange_deadline(deadline)

    assert work.remaining() == pytest.approx(10.0 - MIN_WORK_SECONDS)
    assert work.clock is deadline.clock


def test_a_slow_lease_grant_shortens_the_work_not_the_lease(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Seed 48 (first seen at 54, a DynamoDB brownout): a grant or renewal that took a second let the holder
    work a second past the lease the table recorded."""
    seen: list[float] = []
    vendor = make_vendor(lease_seconds=4.0)
    real_lease = vendor.table.try_lease
    real_mint = vendor.minter.mint

    def slow_lease(*args: Any, **kwargs: Any) -> Any:
        entry = real_lease(*args, **kwargs)
        time.sleep(1.0)  # the answer takes a second to come back
        return entry

    def mint(request: Any, work: Deadline, *args: Any) -> Any:
        seen.append(work.remaining())
        return real_mint(request, work, *args)

    vendor.table.try_lease = slow_lease  # type: ignore[method-assign]
    vendor.minter.mint = mint  # type: ignore[method-assign]
    vendor.vend(direct("fr:idm:*"), budget(30))

    assert seen
    assert seen[0] <= 4.0 - 0.5 - 0.9  # the lease ran from before the request, less its margin


def test_a_reporter_waits_out_a_lapsed_lease_the_fleet_still_honours(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Review of the clock tolerance: a lease that ended less than LEASE_CLOCK_TOLERANCE ago is still held
    for the retirement's condition, so a reporter must wait for it, not count it as a refusal."""
    wall = FakeWall()
    first = make_vendor(wall=wall)
    old = first.vend(direct("fr:idm:*"), budget()).token.access_token
    reporter = make_vendor(wall=wall)
    reporter.context.clocks.sleep = wall.advance  # its polls move the clock the lease is judged by
    # Another reporter took the retirement lease and died; its lease ended a second ago.
    assert first.table.try_retire(
        _key(first), "dead-reporter", 1.0, report("fr:idm:*", old).rejected or "", 30
    ).granted
    wall.advance(2.0)
    fresh_stack.standin.reset_counters()

    served = reporter.vend(report("fr:idm:*", old), budget())

    assert served.token.access_token != old
    assert served.retired is not None
    assert fresh_stack.standin.exchanges == 1


def test_a_retirement_that_retries_renews_its_lease_before_each_retry(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Soak (keyless, seed 687841730): a retirement's replacement mint retried after AIC's 503s without
    renewing its lease; its third attempt reached AIC after another holder had taken the lease over. Every
    holder that retries renews first, fenced by its own holder value."""
    vendor = make_vendor()
    old = vendor.vend(direct("fr:idm:*"), budget()).token.access_token
    renewed: list[str] = []
    real_renew = vendor.table.renew

    def renew(key: str, holder: str, seconds: float) -> bool:
        renewed.append(holder)
        return real_renew(key, holder, seconds)

    vendor.table.renew = renew  # type: ignore[method-assign]
    fresh_stack.standin.reset_counters()
    fresh_stack.standin.push_faults(Fault("status", status=503), Fault("status", status=503))

    served = vendor.vend(report("fr:idm:*", old), budget(30))

    assert served.retired is not None
    assert served.token.access_token != old
    assert fresh_stack.standin.token_requests == 3
    assert len(renewed) == 2
    assert len(set(renewed)) == 1


def test_a_retirement_stops_retrying_once_another_holder_took_its_lease(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """The same rule from the other side: a renewal refused (the lease was taken over) ends the
    retirement's attempts; nothing more goes to AIC on a lease that is no longer ours."""
    vendor = make_vendor()
    old = vendor.vend(direct("fr:idm:*"), budget()).token.access_token
    vendor.table.renew = lambda key, holder, seconds: False  # type: ignore[method-assign]
    fresh_stack.standin.reset_counters()
    fresh_stack.standin.push_faults(Fault("status", status=503), Fault("status", status=503))

    with pytest.raises(UpstreamUnavailable):
        vendor.vend(report("fr:idm:*", old), budget(30))

    assert fresh_stack.standin.token_requests == 1


def test_a_slow_use_record_never_serves_less_validity_than_asked(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Issue 30 (seeds 745592285 and 281993656): the token is chosen, then the use is recorded; a write
    that takes time (a retry after a throttle) ages the chosen token below the caller's need. It is chosen
    again."""
    wall = FakeWall()
    client = fresh_stack.client("dynamodb")

    class SlowUseRecord:
        def update_item(self, **kwargs: Any) -> Any:
            if "last_vended" in kwargs["UpdateExpression"]:
                wall.advance(1.0)  # the write and its retry
            return client.update_item(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

    minted = make_vendor(wall=wall, sleeps=[]).vend(direct("fr:idm:*"), budget()).token
    wall.advance(minted.seconds_left(wall()) - 500.3)  # 500.3 s left; the last use recorded over 300 s ago
    vendor = make_vendor(wall=wall, sleeps=[], dynamodb=SlowUseRecord())

    vended = vendor.vend(direct("fr:idm:*", min_validity=500), budget())

    assert vended.token.seconds_left(wall()) >= 500
    assert fresh_stack.standin.exchanges == 2  # the aged token was replaced, not handed out


def test_a_request_left_without_time_for_the_table_does_not_mint_beside_the_fleet(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Issue 30 (soak seed 826317362): a process that froze woke near its deadline; the table read failed
    for lack of time, and the vendor minted on its own, a second exchange beside the fleet's stored token.
    With less than MIN_WORK_SECONDS left, no exchange starts: the caller gets UpstreamUnavailable."""
    from botocore.exceptions import ClientError

    from token_vendor.adapters.aws.bounded_client import BoundedClient
    from token_vendor.kernel.errors import UpstreamUnavailable

    make_vendor(sleeps=[]).vend(direct("fr:idm:*"), budget())  # the fleet's token, stored
    clock = [0.0]
    client = fresh_stack.client("dynamodb")

    class SlowRead:
        def get_item(self, **kwargs: Any) -> Any:
            clock[0] += 0.35  # the read takes what is left, and fails
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "x"}}, "GetItem")

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

    vendor = make_vendor(sleeps=[], dynamodb=BoundedClient(SlowRead(), sleep=lambda s: None))
    fresh_stack.standin.reset_counters()

    with pytest.raises(UpstreamUnavailable):
        vendor.vend(direct("fr:idm:*"), Deadline.after(0.5, lambda: clock[0]))

    assert fresh_stack.standin.token_requests == 0


def test_a_waiter_left_without_time_to_try_the_lease_does_not_mint_beside_the_holder(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Issue 30 (soak seed 664331175): a caller waiting on another container's lease froze during a poll
    and woke with 0.05 s left; its next lease attempt was never sent (no time left), the vendor took that
    for table trouble and minted on its own beside the holder, which then stored its token: two
    exchanges in one cycle. With less than MIN_WORK_SECONDS left, no exchange starts."""
    from token_vendor.adapters.aws.bounded_client import BoundedClient
    from token_vendor.kernel.errors import UpstreamUnavailable

    key = _key(make_vendor())
    assert make_vendor().table.try_lease(key, "holder-1", 30.0, None).granted  # another container mints
    clock = [0.0]
    client = fresh_stack.client("dynamodb")
    reads = [0]

    class FrozenPoll:
        def get_item(self, **kwargs: Any) -> Any:
            reads[0] += 1
            if reads[0] == 2:  # the poll's re-read: the process freezes and wakes near its deadline
                clock[0] += 0.95
            return client.get_item(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

    vendor = make_vendor(sleeps=[], dynamodb=BoundedClient(FrozenPoll(), sleep=lambda s: None))
    fresh_stack.standin.reset_counters()

    with pytest.raises(UpstreamUnavailable):
        vendor.vend(direct("fr:idm:*"), Deadline.after(1.0, lambda: clock[0]))

    assert reads[0] == 2  # it waited on the holder's lease, as the soak's caller did
    assert fresh_stack.standin.token_requests == 0


def test_a_report_while_the_table_fails_keeps_to_the_rejection_its_environment_remembers(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """Issue 30 (soak seed 664350822): AIC refused the scope set and the container remembered it; a report
    that came while DynamoDB failed replaced the token without the table, and asked AIC again at once."""
    from botocore.exceptions import ClientError

    from token_vendor.adapters.aws.bounded_client import BoundedClient

    client = fresh_stack.client("dynamodb")
    failing = [False]

    class FlakyTable:
        def get_item(self, **kwargs: Any) -> Any:
            if failing[0]:
                raise ClientError({"Error": {"Code": "ValidationException", "Message": "x"}}, "GetItem")
            return client.get_item(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

    vendor = make_vendor(sleeps=[], dynamodb=BoundedClient(FlakyTable(), sleep=lambda s: None))
    fresh_stack.standin.set_sticky_fault(Fault("status", status=400, body=INVALID_SCOPE))
    with pytest.raises(UpstreamRejected):
        vendor.vend(direct("fr:idm:*"), budget())  # AIC refuses the scope set; remembered here
    fresh_stack.standin.reset_counters()
    failing[0] = True

    with pytest.raises(UpstreamRejected):
        vendor.vend(report("fr:idm:*", "a token it was served earlier"), budget())

    assert fresh_stack.standin.token_requests == 0
