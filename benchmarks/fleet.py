"""``make bench``, simulated containers on one wall clock the bench moves: stampedes, steady load with and
without the scheduled refresh, and how often a warm container re-reads the table.

Each container is a vendor built as Lambda builds one, with the tests' movable wall clock and a metrics sink
that counts what it was told. Import it once the function's environment is set (``benchmarks.bench``).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.bench import Bench
from benchmarks.measure import p50, p99, record, say, us
from tests.integration.conftest import FakeWall  # the tests' movable wall clock
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.scopes import normalise_scopes
from token_vendor.kernel.settings import load_settings
from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest
from token_vendor.vend.scheduled_refresh import ScheduledRefresher
from token_vendor.vend.vending import Clocks, TokenVendor
from token_vendor.wiring import build_vendor


class CountingSink:
    """A metrics sink that counts each metric's name (tiers and waits)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add_metric(self, name: str, unit: str, value: float) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1


def on_clock(vendor: TokenVendor, wall: Any) -> TokenVendor:
    """The vendor's collaborators, its table (and the table's use records) and its envelope on ``wall``."""
    vendor.context.clocks = Clocks(wall=wall)
    vendor.table._clock = wall
    vendor.table._uses._clock = wall  # the use records read the table's clock
    if vendor.table._envelope is not None:
        vendor.table._envelope._clock = wall
    return vendor


class Fleet:
    """Containers sharing one wall clock and one metrics count."""

    def __init__(self, b: Bench) -> None:
        self.bench = b
        self.wall = FakeWall()
        self.sink = CountingSink()

    def container(self) -> TokenVendor:
        vendor = build_vendor(self.bench.settings)
        vendor.context.metrics = self.sink
        return on_clock(vendor, self.wall)

    def stampede(self, scope: str, total: int = 1024) -> int:
        """8 containers, 16 threads each, vend ``total`` times at once; the exchanges at AIC it took."""
        vendors = [self.container() for _ in range(8)]
        standin = self.bench.stack.standin
        before = standin.exchanges
        barrier = threading.Barrier(128)
        stamp_request = VendRequest(normalise_scopes(scope), None, DIRECT_CALLER)

        def worker(vendor: TokenVendor) -> None:
            barrier.wait()
            for _ in range(total // 128):
                vendor.vend(stamp_request, Deadline.after(30, time.monotonic))

        with ThreadPoolExecutor(max_workers=128) as executor:
            list(executor.map(worker, [v for v in vendors for _ in range(16)]))
        return standin.exchanges - before


def stampedes(b: Bench) -> Fleet:
    """A cold cache, then a refresh-ahead window: one exchange each. Returns the fleet, its clock moved."""
    say("\nstampede (8 simulated containers × 16 threads = 128-way)")
    fleet = Fleet(b)
    cold = fleet.stampede("fr:idc:esv:read")
    record("exchanges per 1,024 vends, cold cache", str(cold), "= 1", cold == 1)
    say(f"    (tiers and waits: {dict(sorted(fleet.sink.counts.items()))})")
    fleet.sink.counts.clear()
    fleet.wall.advance(899 - 200)  # every container now holds a token inside the refresh-ahead window
    refresh = fleet.stampede("fr:idc:esv:read")
    record("exchanges per 1,024 vends, across a refresh-ahead window", str(refresh), "= 1", refresh == 1)
    say(f"    (tiers and waits: {dict(sorted(fleet.sink.counts.items()))})")
    return fleet


def _steady(b: Bench, with_schedule: bool, scope: str) -> tuple[int, list[float], int]:
    """4 containers, one vend each per half-second tick for 3 lifetimes: caller mints and steady-state
    latencies (after the first lifetime), and the exchanges at AIC."""
    clock = FakeWall()
    fast = load_settings({**os.environ, "REFRESH_AHEAD_SECONDS": "20", "MIN_VALIDITY_SECONDS": "8"})
    fleet = [on_clock(build_vendor(fast), clock) for _ in range(4)]
    refresher = ScheduledRefresher(
        fleet[0],
        fleet[0].table,
        tenant=fast.tenant_fqdn,
        account_ref=fleet[0].account_ref,
        keep_warm_seconds=3600,
        clock=clock,
        metrics=CountingSink(),
        lookahead=4.0,
    )
    steady_request = VendRequest(normalise_scopes(scope), None, DIRECT_CALLER)
    caller_mints, latencies = 0, []
    before = b.stack.standin.exchanges
    for tick in range(360):  # 180 s of the fast clock in half-second ticks: 3 lifetimes
        if with_schedule and tick % 8 == 0:
            refresher.run(Deadline.after(30, time.monotonic))
        for vendor in fleet:
            started = time.perf_counter()
            vended = vendor.vend(steady_request, Deadline.after(30, time.monotonic))
            if tick >= 120:  # steady state: after the first lifetime
                latencies.append((time.perf_counter() - started) * 1e6)
                caller_mints += vended.tier == "minted"
        clock.advance(0.5)
    return caller_mints, latencies, b.stack.standin.exchanges - before


def steady_load(b: Bench) -> None:
    """Issue 25: with the schedule no caller mints and the p99 stays a table hit's; without, callers mint."""
    say(
        "\nsteady load, 3 token lifetimes on a fast clock (60 s tokens; schedule every 4 s, as 60 s is to 899 s)"
    )
    b.stack.standin.set_token_lifetime(60)
    try:
        scheduled_mints, scheduled_lat, scheduled_exchanges = _steady(b, True, "bench:s998")
        unscheduled_mints, unscheduled_lat, unscheduled_exchanges = _steady(b, False, "bench:s997")
    finally:
        b.stack.standin.set_token_lifetime(899)
    table_p99 = p99(b.table_hits)
    record(
        "with the schedule: mints inside a caller's request (steady state)",
        str(scheduled_mints),
        "= 0",
        scheduled_mints == 0,
    )
    record(
        "  steady-state p99 vend ÷ table-hit p99",
        f"{p99(scheduled_lat) / table_p99:.2f}×",
        "≤ 1.2×",
        p99(scheduled_lat) / table_p99 <= 1.2,
    )
    record("  p50 / p99 vend", f"{us(p50(scheduled_lat))} / {us(p99(scheduled_lat))}")
    record("  exchanges at AIC over 3 lifetimes", str(scheduled_exchanges))
    record("without the schedule (today): mints inside a caller's request", str(unscheduled_mints))
    record("  steady-state p99 vend ÷ table-hit p99", f"{p99(unscheduled_lat) / table_p99:.2f}×")
    record("  p50 / p99 vend", f"{us(p50(unscheduled_lat))} / {us(p99(unscheduled_lat))}")
    record("  exchanges at AIC over 3 lifetimes", str(unscheduled_exchanges))


class _CountingReads:
    """The table client, counting GetItem calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_item(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self.inner.get_item(**kwargs)


def warm_reread(fleet: Fleet) -> None:
    """One vend a second for five minutes on one container: how many table reads a minute."""
    say("\nwarm re-read (a flush or a retirement reaches every warm container within a minute)")
    reader = fleet.container()
    counting = _CountingReads(reader.table._client)
    reader.table._client = counting
    reread_request = VendRequest(normalise_scopes("bench:s999"), None, DIRECT_CALLER)
    reader.vend(reread_request, Deadline.after(30, time.monotonic))
    counting.reads = 0
    minutes = 5  # inside the token's life before its refresh-ahead window: memory hits only
    for _ in range(minutes * 60):
        fleet.wall.advance(1)  # one vend a second on the container's clock
        reader.vend(reread_request, Deadline.after(30, time.monotonic))
    per_minute = counting.reads / minutes
    record(
        "table reads per container per scope set per minute (1 vend/s)",
        f"{per_minute:.2f}",
        "≤ 1",
        per_minute <= 1,
    )
