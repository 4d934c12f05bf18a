"""Issue 14: the fleet simulation, as part of ``make test`` (``make simulate`` runs 10,000 histories)."""

from __future__ import annotations

import pytest

from tests.simulation.fleet import draw_scenario, history_digest, run_history
from tests.simulation.simulate import REGRESSION_SEEDS, explore, quiet, run_seeds

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _quiet() -> None:
    quiet()


def test_the_regression_seeds_hold() -> None:
    """Each once broke an invariant (docs/decisions.md, "Simulation"); each must stay clean."""
    totals = run_seeds(list(REGRESSION_SEEDS))
    assert totals.failures is None, totals.failures


def test_a_few_hundred_seeded_histories_keep_every_invariant() -> None:
    totals = run_seeds(list(range(10_001, 10_301)))
    assert totals.failures is None, [(seed, violations) for seed, violations, _ in totals.failures or []]
    assert totals.crashes > 0  # the runs did crash environments and lapse leases
    assert totals.lapses > 0


def test_the_same_seed_gives_the_same_history_byte_for_byte() -> None:
    first = run_history(draw_scenario(4242))
    second = run_history(draw_scenario(4242))
    assert history_digest(first) == history_digest(second)
    assert first.log == second.log


def test_every_interleaving_of_the_small_configuration_keeps_the_invariants() -> None:
    histories, violations = explore(7)
    assert violations == []
    assert histories > 10


@pytest.mark.parametrize("weaken", ["fence", "lease"])
def test_weakening_a_condition_to_always_true_is_found(weaken: str) -> None:
    """The simulation can fail: with the store's fence, or the lease's condition, always true, some
    seed of a standard run breaks an invariant."""
    totals = run_seeds(list(range(1, 301)), weaken=weaken)
    assert totals.failures, f"no violation found with the {weaken} condition weakened"
