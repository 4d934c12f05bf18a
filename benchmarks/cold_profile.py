"""Where the built artefact's cold start goes (issue 37): ``python -m benchmarks.cold_profile``.

Lays out ``make build``'s function and layer as Lambda runs them (``tools/lambda_layout.py``), starts the
local stack, seeds the table with a token, then runs ``cold_profile_child.py`` under CPython 3.13 (``-S``,
read-only, no bytecode writes): the phases of each run (imports, client creation, each AWS operation, the
first vend), medians of ``--runs`` runs, and one run under ``-X importtime`` summed by top-level package.
Prints a Markdown breakdown for ``benchmarks/results.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from local.stack import running_stack
from tools.compile_build import BUILD, find_runtime_python
from tools.lambda_layout import lay_out, set_writable

CHILD = str(Path(__file__).with_name("cold_profile_child.py"))


def _run(python: str, env: dict[str, str], *flags: str) -> tuple[float, dict[str, Any], str]:
    begin = time.perf_counter()
    done = subprocess.run([python, "-S", *flags, CHILD], env=env, capture_output=True, text=True, check=True)
    wall = (time.perf_counter() - begin) * 1000
    return wall, json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def import_breakdown(stderr: str) -> dict[str, float]:
    """Self time of every imported module (``-X importtime``), summed by top-level package, in ms."""
    by_package: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        by_package[name.split(".")[0]] += int(self_us) / 1000
    return dict(sorted(by_package.items(), key=lambda item: -item[1]))


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key, 0.0) if isinstance(value, dict) else 0.0
        values.append(float(value))
    return statistics.median(values)


def _row(runs: list[dict[str, Any]], label: str, *path: str, cpu: str | None = None) -> str:
    cpu_ms = _median(runs, "cpu_ms", cpu) if cpu else None
    return f"| {label} | {_median(runs, *path):.1f} | {'' if cpu_ms is None else f'{cpu_ms:.1f}'} |"


def report(walls: list[float], runs: list[dict[str, Any]], imports: dict[str, float]) -> list[str]:
    lines = [
        "| phase (built artefact, CPython 3.13, first vend a table hit) | median ms | CPU ms |",
        "| --- | --- | --- |",
        f"| whole process (interpreter start to exit) | {statistics.median(walls):.1f} | |",
        _row(runs, "in process: imports, init and the first vend", "in_process_ms", cpu="in_process"),
        _row(runs, "import botocore.session", "botocore_import_ms", cpu="botocore_import"),
        _row(runs, "rest of the handler's import and init", "init_ms", cpu="init"),
    ]
    for service in sorted({s for run in runs for s in run["clients_ms"]}):
        when = "init" if _median(runs, "clients_at_init_ms", service) else "first vend"
        lines.append(_row(runs, f"create_client('{service}') ({when})", "clients_ms", service, cpu=service))
    lines.append(_row(runs, "first vend, whole", "first_vend_ms", cpu="first_vend"))
    for operation in sorted({o for run in runs for o in run["calls_ms"]}):
        lines.append(_row(runs, f"{operation} (first call)", "calls_ms", operation, cpu=operation))
    lines.append(f"| modules loaded | {_median(runs, 'modules'):.0f} | |")
    lines += ["", "| top-level package (`-X importtime`, self time, one run) | ms |", "| --- | --- |"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in list(imports.items())[:14]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    python = find_runtime_python()
    if python is None or not (BUILD / "bytecode.json").exists():
        sys.stderr.write("needs CPython 3.13 and 'make build'\n")
        return 1
    with running_stack() as stack, tempfile.TemporaryDirectory() as work:
        root = Path(work)
        env = {**stack.function_env(), "PATH": "/usr/bin:/bin", **lay_out(root / "lambda")}
        try:
            _run(python, env)  # the first run mints and stores: every later run is a table hit
            walls, runs = [], []
            for _ in range(args.runs):
                wall, run, _ = _run(python, env)
                walls.append(wall)
                runs.append(run)
            _, _, stderr = _run(python, env, "-X", "importtime")
        finally:
            set_writable(root, True)
    print("\n".join(report(walls, runs, import_breakdown(stderr))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
