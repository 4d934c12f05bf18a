"""Issues 14 and 24: the fleet simulation in ``make test`` (``make simulate`` runs 10,000 histories)."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re

import pytest

from tests.simulation import simulate
from tests.simulation.fleet import history_digest, run_history
from tests.simulation.regression_seeds import FOUND, KEYLESS_SEEDS, PLAIN_SEEDS, REGRESSION_SEEDS, Found
from tests.simulation.scenarios import FLAVOURS, draw_scenario
from tests.simulation.simulate import explore, quiet, run_seeds
from tests.simulation.weakenings import WEAKENINGS, weakened
from token_vendor.adapters.aws.token_table import TokenTable
from token_vendor.vend.vending import TokenVendor

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _quiet() -> None:
    quiet()


def _found_id(found: Found) -> str:
    return f"{found.seed}-" + "-".join(re.findall(r"[a-z0-9]+", found.story.lower())[:6])


@pytest.mark.parametrize("found", FOUND, ids=_found_id)
def test_a_history_that_once_broke_an_invariant_stays_clean(found: Found) -> None:
    """Each seed in regression_seeds.py once broke an invariant (its story says how); it must stay clean."""
    totals = run_seeds([found.seed])
    assert totals.failures is None, (found.story, totals.failures)


@pytest.mark.parametrize("found", FOUND, ids=_found_id)
def test_each_regression_seed_names_the_rule_that_fixed_it(found: Found) -> None:
    module_name, _, path = found.owner.partition(":")
    owner: object = importlib.import_module(f"token_vendor.{module_name}")
    for part in path.split("."):
        owner = getattr(owner, part)  # AttributeError: the rule moved and the story points nowhere


def test_the_vendors_code_tells_no_seed_stories() -> None:
    """Issue 33: a seed's story lives beside the test that pins it, not in the rule's comment."""
    package = pathlib.Path(importlib.import_module("token_vendor").__file__ or "").parent
    told = [
        f"{path.name}:{number}"
        for path in sorted(package.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bseeds? \d", line)
    ]
    assert told == []


def test_the_first_regression_seeds_stay_the_plain_histories_they_were() -> None:
    """Issue 14's seeds predate the flavours: a flavour would change the history they replay."""
    assert {draw_scenario(seed).flavour for seed in PLAIN_SEEDS} == {"plain"}


def test_a_few_hundred_seeded_histories_keep_every_invariant() -> None:
    totals = run_seeds(list(range(10_001, 10_301)))
    assert totals.failures is None, [(seed, violations) for seed, violations, _ in totals.failures or []]
    assert totals.crashes > 0  # the runs did crash environments and lapse leases
    assert totals.lapses > 0
    flavours = {draw_scenario(seed).flavour for seed in range(10_001, 10_301)}
    assert flavours == set(FLAVOURS)


def test_the_same_seed_gives_the_same_history_byte_for_byte() -> None:
    first = run_history(draw_scenario(4242))
    second = run_history(draw_scenario(4242))
    assert history_digest(first) == history_digest(second)
    assert first.log == second.log


def test_the_digest_covers_what_callers_got() -> None:
    history = run_history(draw_scenario(4242))
    before = history_digest(history)
    history.outcomes[0].error = "something else"
    assert history_digest(history) != before


def test_every_interleaving_of_the_small_configuration_keeps_the_invariants() -> None:
    histories, violations = explore(7)
    assert violations == []
    assert histories > 10


@pytest.mark.parametrize("weaken", sorted(WEAKENINGS))
def test_each_weakened_rule_fails_the_simulation(weaken: str) -> None:
    """Break one rule of the vendor by a two-line change: some seed of a standard run breaks an invariant.
    (docs/decisions.md tables the first failing seed and invariant of each, over 10,000 histories.)"""
    totals = run_seeds(list(range(1, 1501)), weaken=weaken, until_failure=True)
    assert totals.failures, f"no invariant noticed the {weaken!r} rule broken in 1,500 histories"


def test_a_weakening_patches_the_vendor_only_and_is_undone() -> None:
    """Never an invariant, never the simulated table: every patched owner is the vendor's."""
    for name, weakening in WEAKENINGS.items():
        for owner, attribute, _ in weakening.patches():
            module = owner.__name__ if inspect.ismodule(owner) else owner.__module__
            assert module.startswith("token_vendor."), (name, owner, attribute)
    originals = (TokenTable.renew, TokenTable.try_retire, TokenVendor._memory_hit)
    for name in WEAKENINGS:
        with weakened(name):
            pass
    assert (TokenTable.renew, TokenTable.try_retire, TokenVendor._memory_hit) == originals


def test_help_lists_every_switch(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        simulate.main(["--help"])
    shown = capsys.readouterr().out
    for name, weakening in WEAKENINGS.items():
        assert name in shown
        assert weakening.rule.split()[0] in shown


def test_a_run_prints_its_seed_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate.main(["--histories", "4", "--start", "500", "--workers", "1"]) == 0
    assert "seeds 500..503" in capsys.readouterr().out


def test_a_soak_draws_its_first_seed_even_in_ci_and_prints_the_range_first(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make soak``: a random start each time (CI's fixed start is for ``make simulate``), and the range
    is the first line, so a run stopped half way still says what to replay."""
    monkeypatch.setenv("CI", "1")
    starts = set()
    for _ in range(2):
        assert simulate.main(["--histories", "2", "--random-start", "--workers", "1"]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first.startswith("simulate: seeds ")
        starts.add(first.split()[2])
    assert len(starts) == 2
    assert "1..2" not in starts


def test_a_share_of_the_histories_signs_keyless_and_the_regression_seeds_replay_as_found() -> None:
    """Issue 35: about a quarter of the seeds sign with kms:Sign (tests/simulation/signing.py); the seeds
    that once found a bug keep the history they were found in."""
    keyless = [seed for seed in range(10_001, 10_301) if draw_scenario(seed).keyless]
    assert 50 <= len(keyless) <= 110
    found_keyless = [seed for seed in REGRESSION_SEEDS if draw_scenario(seed).keyless]
    assert found_keyless == list(KEYLESS_SEEDS)  # only the seeds keyless histories found
    minted = next(h for h in (run_history(draw_scenario(seed)) for seed in keyless[:20]) if h.aic)
    assert any(
        "KMS Sign" in line for line in minted.log
    )  # the real KmsSigner signed through the simulated KMS
    assert minted.violations == []


def test_the_simulated_table_reads_between_as_dynamodb_does() -> None:
    """The fleet refresh counter's condition uses BETWEEN; the simulated table refused it, and every
    scheduled run's thread died without a violation."""
    from tests.simulation.expressions import Condition

    values = {":one": {"N": "1"}, ":below": {"N": "3"}}
    condition = Condition("refresh_count BETWEEN :one AND :below", {}, values)
    counts = [condition.evaluate({"refresh_count": {"N": str(n)}}) for n in (0, 1, 3, 4)]
    assert counts == [False, True, True, False]  # both ends are inside
    assert not condition.evaluate(None)  # a missing attribute compares false
    assert not condition.evaluate({"refresh_count": {"S": "2"}})  # so does another type


def test_a_scheduled_run_that_escapes_is_a_violation() -> None:
    from tests.simulation import expressions

    comparators = expressions._COMPARATORS
    try:
        expressions._COMPARATORS = comparators - {"<="}  # the table now refuses the counter's condition
        history = run_history(draw_scenario(4242))
    finally:
        expressions._COMPARATORS = comparators
    assert any("scheduled refresh escaped" in v for v in history.violations), history.violations
