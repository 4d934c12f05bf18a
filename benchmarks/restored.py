"""The restored first vend, and the built cold-start rows alone: ``python -m benchmarks.restored`` (issue 37).

The whole bench takes minutes of both cores; this runs only its built-artefact cold-start rows
(``benchmarks.cold_start.built_cold_start``: the built function under CPython 3.13 against a bare boto3
function, and the restored first vend) on the local stack, and prints them. ``make bench`` writes them into
``benchmarks/results.md`` with everything else.

A restore is stood in for by ``tests/built/restore_child.py``: one process of the built artefact runs the
init phase once; each measured round forks it (memory copied, other threads gone) and the child serves
its first vend, a table hit (GetItem and a KMS Decrypt: the data key is not in the snapshot). The figure
is from just before the fork to the end of that vend. It is the function's own share of a restored start:
Lambda's restore itself (bringing the snapshot's memory back) happens before, and is not measured here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESTORE_CHILD = REPO / "tests" / "built" / "restore_child.py"


class RestoredRuns:
    """The built artefact, initialized once; ``first_vend_ms`` forks it and times the copy's first vend."""

    def __init__(self, python: str, env: dict[str, str], scope: str = "fr:idm:*") -> None:
        self._scope = scope
        self._process = subprocess.Popen(  # our interpreter and the child script of the restore test
            [python, "-S", str(RESTORE_CHILD)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.init_ms = float(self._read()["init_ms"])
        self.cpu_us: list[float] = []  # the copy's CPU time, from the fork to the end of its first vend

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        document: dict[str, Any] = json.loads(self._process.stdout.readline())
        return document

    def first_vend_ms(self) -> float:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": "fork", "scope": self._scope}) + "\n")
        self._process.stdin.flush()
        child, parent = self._read(), self._read()
        if "error" in child or parent.get("status") != 0:
            raise RuntimeError(f"the restored copy did not vend: {child}, {parent}")
        self.cpu_us.append(float(child["cpu_ms"]) * 1000.0)
        return float(child["elapsed_ms"]) * 1000.0  # microseconds, as the bench's other timings

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


def main() -> int:
    from benchmarks.cold_start import built_cold_start  # before stdout is redirected: it prints to it
    from local.lambda_context import LocalContext
    from local.stack import running_stack

    real_stdout, sys.stdout = sys.stdout, open(os.devnull, "w")
    with running_stack() as stack:
        os.environ.update(stack.function_env())
        from token_vendor import app

        app.lambda_handler({"scope": "fr:idm:*"}, LocalContext())  # the table holds a token: a table hit
        sys.stdout = real_stdout
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        built_cold_start(dict(os.environ))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
