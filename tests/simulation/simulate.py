"""``make simulate``: thousands of seeded histories of the fleet over the real vendor code.

    python -m tests.simulation.simulate                      # 10,000 histories (fixed seeds when CI is set)
    python -m tests.simulation.simulate --seed 1234 --verbose   # replay one history, print its steps
    python -m tests.simulation.simulate --weaken lease        # break one rule: the invariants must fail
    python -m tests.simulation.simulate --random-start --histories 50000   # make soak

Small configurations (2 environments, 1 scope set, 1 refresh) are also explored exhaustively: every
interleaving of their steps. A failure prints the seed, the command that replays it and the last steps.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from tests.simulation.fleet import History, history_digest, run_history
from tests.simulation.regression_seeds import REGRESSION_SEEDS
from tests.simulation.scenarios import draw_scenario
from tests.simulation.weakenings import WEAKENINGS, describe

# REGRESSION_SEEDS once found a bug each (regression_seeds.py holds each one's story): they run first.


@dataclass
class Totals:
    histories: int = 0
    steps: int = 0
    crashes: int = 0
    lapses: int = 0
    faults: int = 0
    exchanges_max: int = 0
    failures: list[tuple[int, list[str], list[str]]] | None = None
    aic: dict[str, int] = field(default_factory=dict)  # every AIC attempt, by its answer
    flavours: dict[str, int] = field(default_factory=dict)

    def add(self, history: History) -> None:
        self.histories += 1
        self.steps += history.steps
        self.crashes += history.crashes
        self.lapses += history.observed.lapses
        profile = history.scenario.profile
        self.faults += int(profile.fail_rate > 0 or profile.down or profile.invalid_scope)
        self.faults += int(history.scenario.ddb_faults > 0)
        if history.observed.exchanges:
            self.exchanges_max = max(self.exchanges_max, *history.observed.exchanges.values())
        for answer, count in history.aic.items():
            self.aic[answer] = self.aic.get(answer, 0) + count
        flavour = history.scenario.flavour
        self.flavours[flavour] = self.flavours.get(flavour, 0) + 1
        if history.violations:
            self.failures = (self.failures or []) + [
                (history.scenario.seed, history.violations, history.log[-25:])
            ]


def quiet() -> None:
    """The vendor's warnings (failed attempts, stale serving) are expected here by the thousand."""
    logging.getLogger("token_vendor").setLevel(logging.CRITICAL)


def run_seeds(seeds: list[int], weaken: str | None = None, *, until_failure: bool = False) -> Totals:
    quiet()
    totals = Totals()
    for seed in seeds:
        totals.add(run_history(draw_scenario(seed), weaken=weaken))
        if until_failure and totals.failures:
            break
    return totals


def merge(parts: list[Totals]) -> Totals:
    total = Totals()
    for part in parts:
        total.histories += part.histories
        total.steps += part.steps
        total.crashes += part.crashes
        total.lapses += part.lapses
        total.faults += part.faults
        total.exchanges_max = max(total.exchanges_max, part.exchanges_max)
        for answer, count in part.aic.items():
            total.aic[answer] = total.aic.get(answer, 0) + count
        for flavour, count in part.flavours.items():
            total.flavours[flavour] = total.flavours.get(flavour, 0) + count
        if part.failures:
            total.failures = (total.failures or []) + part.failures
    return total


def explore(seed: int, weaken: str | None = None, limit: int = 20000) -> tuple[int, list[str]]:
    """Every interleaving of a small configuration (depth-first over the scheduler's choices)."""
    scenario = draw_scenario(seed, small=True)
    pending: list[list[int]] = [[]]
    histories = 0
    while pending and histories < limit:
        prefix = pending.pop()
        made: list[tuple[int, int]] = []

        def choose(n: int, prefix: list[int] = prefix, made: list[tuple[int, int]] = made) -> int:
            pick = prefix[len(made)] if len(made) < len(prefix) else 0
            made.append((pick, n))
            return pick

        history = run_history(scenario, choose=choose, weaken=weaken)
        histories += 1
        if history.violations:
            return histories, history.violations
        for depth in range(len(prefix), len(made)):
            for alternative in range(1, made[depth][1]):
                pending.append([pick for pick, _ in made[:depth]] + [alternative])
    return histories, []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make simulate",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--histories", type=int, default=10_000)
    parser.add_argument("--seed", type=int, help="replay one history")
    parser.add_argument(
        "--start", type=int, default=None, help="first seed (default: fixed in CI, random else)"
    )
    parser.add_argument(
        "--weaken",
        choices=sorted(WEAKENINGS),
        metavar="RULE",
        help="break one rule of the vendor (a patched constant or method) to show the invariants catch it:\n"
        + describe(),
    )
    parser.add_argument(
        "--random-start",
        action="store_true",
        help="draw the first seed from os.urandom even in CI (make soak); the range is printed first",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    quiet()

    if args.seed is not None:
        history = run_history(draw_scenario(args.seed), weaken=args.weaken)
        print(history.scenario.describe())
        for line in history.log if args.verbose else history.log[-40:]:
            print(line)
        for outcome in history.outcomes:
            got = outcome.error or f"token {outcome.token.access_token if outcome.token else '-'}"
            print(f"  {outcome.caller} env{outcome.env} {outcome.request} -> {got} at {outcome.ended:.3f}")
        print(f"digest {history_digest(history)}; violations: {history.violations or 'none'}")
        return 1 if history.violations else 0

    started = time.monotonic()
    start = args.start if args.start is not None else (1 if os.environ.get("CI") else random.randrange(10**9))
    if args.random_start:
        start = int.from_bytes(os.urandom(4), "big") % 10**9
    # Printed before the run, so even a run stopped half way can be replayed.
    last = start + args.histories - 1
    print(f"simulate: seeds {start}..{last} (--start {start} --histories {args.histories})")
    sys.stdout.flush()
    seeds = list(REGRESSION_SEEDS) + list(range(start, start + args.histories))
    chunks = [seeds[i :: args.workers] for i in range(args.workers)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        totals = merge(list(pool.map(run_seeds, chunks, [args.weaken] * len(chunks))))
    small_histories, small_violations = explore(start, weaken=args.weaken)
    elapsed = time.monotonic() - started
    print(
        f"simulate: {totals.histories} histories (seeds {start}..{start + args.histories - 1}), "
        f"{totals.steps} steps, {totals.crashes} crashes, {totals.lapses} lease lapses, "
        f"{totals.faults} fault profiles injected, at most {totals.exchanges_max} exchanges for one "
        f"scope set in a history; exhaustive: {small_histories} interleavings of 2 environments x 1 "
        f"scope set x 1 refresh; {elapsed:.0f} s"
    )
    answers = ", ".join(f"{count} {answer}" for answer, count in sorted(totals.aic.items()))
    flavours = ", ".join(f"{count} {flavour}" for flavour, count in sorted(totals.flavours.items()))
    print(f"AIC attempts: {sum(totals.aic.values())} ({answers}); flavours: {flavours}")
    failed = False
    for seed, violations, log in (totals.failures or [])[:3]:
        failed = True
        print(f"\nFAILED seed {seed}: {'; '.join(violations)}")
        print(
            f"replay: .venv/bin/python -m tests.simulation.simulate --seed {seed}"
            + (f" --weaken {args.weaken}" if args.weaken else "")
            + " --verbose"
        )
        print("last steps:\n" + "\n".join(log))
    if small_violations:
        failed = True
        print(f"\nFAILED exhaustive small configuration: {'; '.join(small_violations)}")
    if failed:
        print(f"\n{len(totals.failures or []) + bool(small_violations)} failing histories")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
