"""``make bench``: the figures of issue 7, measured side by side in one run on the local stack.

Every figure that has a target is a ratio of two things measured in this same run, so it holds on a noisy
machine. Writes ``benchmarks/results.md`` and prints the same table. The steps, in the order they run and
the table lists them, are named in ``main``; each lives with its kind: ``in_process`` (the handler in this
process), ``fleet`` (simulated containers on a movable clock), ``flows`` (the shell and journey ways),
``cold_start`` (fresh processes); ``measure`` times and records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.cost_model import results_section as cost_section
from benchmarks.cost_model import write_readme
from benchmarks.measure import DURATIONS, FIGURES, machine, say
from local.stack import DEFAULT_SCOPES, DEVELOPER_ROLE, start_stack

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results.md"
BENCH_SCOPES = tuple(f"bench:s{i}" for i in range(1000))


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    started = time.monotonic()
    # The function's JSON logs and EMF metrics go to stdout: send them to /dev/null, keep ours.
    sys.stdout = open(os.devnull, "w")
    stack = start_stack(scopes=DEFAULT_SCOPES + BENCH_SCOPES)
    os.environ.update(
        stack.function_env(
            CALLER_POLICY=json.dumps(
                {"arn:aws:iam::123456789012:role/reporting": ["fr:idm:*"], DEVELOPER_ROLE: ["*"]}
            )
        )
    )
    # Only now: importing the handler reads the environment (Lambda's init phase).
    from benchmarks import cold_start, fleet, flows, in_process
    from benchmarks.bench import Bench

    say(f"token vendor benchmarks — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {machine()}")
    bench = Bench.start(stack)
    in_process.warm_latency(bench)
    in_process.identity_proofs(bench)
    table_vendor = in_process.table_hit(bench)
    in_process.mint(bench, table_vendor)
    in_process.throughput(bench)
    containers = fleet.stampedes(bench)
    fleet.steady_load(bench)
    fleet.warm_reread(containers)
    flows.side_by_side_flows(bench)
    child_env = cold_start.source_cold_start(bench)
    cold_start.built_cold_start(child_env)
    cold_start.memory(child_env)

    elapsed = time.monotonic() - started
    say(f"\nbench took {elapsed:.0f} s")
    write_results(elapsed)
    stack.stop()
    return 0


def cost_model() -> list[str]:
    """The cost section, from this run's handler durations (benchmarks/cost_model.py, which also writes the
    docs/deploy.md's table from the same figures)."""
    if not DURATIONS:
        return []
    return cost_section(DURATIONS)


def write_results(elapsed: float) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, in {elapsed:.0f} s, on: {machine()}.",
        "",
        "Every figure with a target is a ratio of two things measured side by side in this run (absolute times",
        "on a shared 2-core machine drift; ratios hold). Latency ratios are the median of per-round ratios of",
        "interleaved rounds (cold start: of back-to-back process pairs), so drift between rounds cancels.",
        "Local stack: moto server and the AIC stand-in on loopback, so a 'round trip' here is a loopback HTTP",
        "call to a Python server.",
        "",
        "| figure | measured | target | |",
        "| --- | --- | --- | --- |",
    ]
    for f in FIGURES:
        status = "" if f.met is None else ("met" if f.met else "**not met**")
        lines.append(f"| {f.name.strip()} | {f.value} | {f.target} | {status} |")
    lines += cost_model()
    for section in ("cold_start.md", "notes.md"):  # written by hand: how figures were reached
        notes = HERE / section
        if notes.exists():
            lines += ["", notes.read_text().strip()]
    RESULTS.write_text("\n".join(lines) + "\n")
    say(f"wrote {RESULTS.relative_to(REPO)}")
    if DURATIONS:
        write_readme(DURATIONS)
        say("wrote docs/deploy.md's cost table from the same run")


if __name__ == "__main__":
    raise SystemExit(main())
