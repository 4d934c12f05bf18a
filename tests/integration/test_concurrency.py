"""Issue 3: one exchange per scope set per refresh cycle, however many containers race."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.stack import TENANT, LocalStack
from tests.integration.conftest import budget, direct
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.adapters.aws.token_table import TokenTable
from token_vendor.vend.vending import TokenVendor

pytestmark = pytest.mark.integration

CONTAINERS = 8
THREADS_EACH = 16


def _stampede(vendors: list[TokenVendor], scope: str) -> list[Any]:
    """Every thread of every container asks at the same instant (a barrier releases them together)."""
    barrier = threading.Barrier(len(vendors) * THREADS_EACH)

    def ask(vendor: TokenVendor) -> Any:
        barrier.wait()
        return vendor.vend(direct(scope), budget(15))

    with ThreadPoolExecutor(max_workers=len(vendors) * THREADS_EACH) as pool:
        futures = [pool.submit(ask, v) for v in vendors for _ in range(THREADS_EACH)]
        return [f.result(timeout=30) for f in futures]


def test_a_cold_stampede_costs_exactly_one_exchange(make_vendor: Any, fresh_stack: LocalStack) -> None:
    vendors = [make_vendor() for _ in range(CONTAINERS)]

    results = _stampede(vendors, "fr:idm:*")

    assert len(results) == CONTAINERS * THREADS_EACH
    assert fresh_stack.standin.exchanges == 1
    assert len({r.token.access_token for r in results}) == 1
    assert all(r.token.seconds_left(__import__("time").time()) > 800 for r in results)


def test_a_lease_holder_that_dies_mid_mint_costs_at_most_one_more_exchange(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    # A container took the lease, minted, and died before storing: its lease is left behind.
    dead = make_vendor()
    key = cache_key(TENANT, fresh_stack.secret_id, ("fr:idm:*",))
    table = TokenTable(fresh_stack.table_name, fresh_stack.client("dynamodb"), clock=__import__("time").time)
    assert table.try_lease(key, "dead-container", 1.0, fresh_seconds=300).granted
    dead.minter.mint(direct("fr:idm:*"), budget(), None, None)  # the exchange it made before dying
    vendors = [make_vendor(lease_seconds=5) for _ in range(CONTAINERS)]

    results = _stampede(vendors, "fr:idm:*")

    assert len(results) == CONTAINERS * THREADS_EACH
    assert fresh_stack.standin.exchanges <= 2
    assert len({r.token.access_token for r in results}) == 1


def test_exactly_one_of_many_simultaneous_lease_attempts_wins(fresh_stack: LocalStack) -> None:
    """The property the single flight rests on (DynamoDB's atomic conditional write), 150 times over."""
    import time as clock

    tables = [
        TokenTable(fresh_stack.table_name, fresh_stack.client("dynamodb"), clock=clock.time) for _ in range(8)
    ]
    for attempt in range(150):
        key = f"lease-race-{attempt}"
        barrier = threading.Barrier(len(tables))

        def race(table: TokenTable, me: int, key: str = key, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return table.try_lease(key, f"holder-{me}", 5.0, fresh_seconds=300).granted

        with ThreadPoolExecutor(max_workers=len(tables)) as pool:
            wins = list(pool.map(race, tables, range(len(tables))))
        assert wins.count(True) == 1, f"attempt {attempt}: {wins.count(True)} holders"
