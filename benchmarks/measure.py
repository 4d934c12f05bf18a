"""How ``make bench`` measures and records: timings, interleaved side-by-side rounds, and the figure table.

Every step appends its figures with ``record`` (printed at once, written to ``results.md`` at the end) and
the handler durations the cost model prices to ``DURATIONS``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REAL_STDOUT = sys.stdout  # the run sends the function's own logs to /dev/null; ours go here


def say(text: str) -> None:
    REAL_STDOUT.write(text + "\n")
    REAL_STDOUT.flush()


@dataclass
class Figure:
    name: str
    value: str
    target: str = ""
    met: bool | None = None


FIGURES: list[Figure] = []
DURATIONS: dict[str, float] = {}  # microseconds, for the cost model


def record(name: str, value: str, target: str = "", met: bool | None = None) -> None:
    FIGURES.append(Figure(name, value, target, met))
    mark = "" if met is None else ("  [met]" if met else "  [NOT met]")
    say(f"  {name:<58} {value:>24}  {target}{mark}")


def timings(fn: Callable[[], Any], n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        started = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - started) / 1000.0)  # microseconds
    return out


def side_by_side(
    ours: Callable[[], Any], bare: Callable[[], Any], *, rounds: int, n: int, warmup: int
) -> tuple[list[float], list[float], float]:
    """Interleaved rounds of both; the ratio is the median of the rounds' ratios, so drift cancels."""
    ours_all: list[float] = []
    bare_all: list[float] = []
    ratios: list[float] = []
    for _ in range(rounds):
        ours_round = timings(ours, n, warmup=warmup)
        bare_round = timings(bare, n, warmup=warmup)
        ours_all += ours_round
        bare_all += bare_round
        ratios.append(p50(ours_round) / p50(bare_round))
    return ours_all, bare_all, p50(ratios)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.1f} µs"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
