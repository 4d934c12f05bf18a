"""``make bench``, fresh processes: cold start from the source tree and of the built artefact, each against a
bare ``import boto3`` plus one client, and a handler process's peak memory.

Pairs run back to back; each ratio is the median of the pairs' ratios, so drift between pairs cancels.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench import Bench
from benchmarks.measure import p50, record, say, us
from benchmarks.restored import RestoredRuns

REPO = Path(__file__).resolve().parent.parent
REQUIRED_BOTO3 = "1.44.5"  # the dev pin; the layer itself ships botocore only


def source_cold_start(b: Bench) -> dict[str, str]:
    """Import the handler and vend once (a table hit) in a fresh interpreter; returns the children's
    environment (this process's, which points at the local stack)."""
    say("\ncold start (fresh process, median of 11, interleaved)")
    # Our packages are installed (editable) in the venv; `-m` from the repository root finds `local`.
    child_env = dict(os.environ)
    b.app.lambda_handler(
        {"scope": "fr:idm:*"}, b.context
    )  # the table holds a token: the child's first vend hits it
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(11):  # pairs run back to back; the ratio is the median of the pairs' ratios
        for target, sink in (("benchmarks.cold_child", ours), ("benchmarks.bare_child", bare)):
            begin = time.perf_counter_ns()
            subprocess.run([sys.executable, "-m", target], env=child_env, cwd=REPO, check=True)
            sink.append((time.perf_counter_ns() - begin) / 1000.0)
    ratio = p50([o / r for o, r in zip(ours, bare, strict=True)])
    record("import handler + first vend (table hit), p50", us(p50(ours)))
    record("bare 'import boto3' + one client, p50", us(p50(bare)))
    record("  source-tree cold start ÷ bare boto3", f"{ratio:.2f}×", "≤ 1.3×", ratio <= 1.3)
    return child_env


def built_cold_start(child_env: dict[str, str]) -> None:
    """What ships, as Lambda runs it: the built function + layer under CPython 3.13, read-only, with
    PYTHONDONTWRITEBYTECODE=1; import plus the first vend (a table hit). Against a bare ``import boto3`` and
    one client from the same botocore pin, with bytecode, in the same 3.13. Medians of interleaved runs."""
    from tools.compile_build import find_runtime_python
    from tools.lambda_layout import BUILD, lay_out

    say("\ncold start of the built artefact (CPython 3.13, read-only code, no bytecode writes; median of 11)")
    python = find_runtime_python()
    if python is None or not (BUILD / "bytecode.json").exists():
        record("built artefact cold start", "not measured: no CPython 3.13 or no 'make build'")
        return
    _layer_size(BUILD / "DependenciesLayer" / "python")
    child = str(REPO / "tests" / "built" / "lambda_child.py")
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        bare_code = "import boto3; boto3.client('dynamodb', region_name='us-east-1')"
        commands = {
            "shipped": ([python, "-S", child, "--cold"], {**child_env, **lay_out(root / "shipped")}),
            "source": (
                [python, "-S", child, "--cold"],
                {**child_env, **lay_out(root / "source_only", bytecode=False)},
            ),
            "bare": ([python, "-S", "-c", bare_code], _bare_boto3(python, root / "bare", child_env)),
        }
        runs: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}  # CPU time: steadier on a busy machine
        restored = RestoredRuns(python, commands["shipped"][1])  # init once, as a snapshot is (issue 37)
        runs["restored"] = []
        for _ in range(11):
            for name, (command, env) in commands.items():
                begin, used = time.perf_counter_ns(), _children_cpu_us()
                subprocess.run(command, env=env, check=True)
                runs[name].append((time.perf_counter_ns() - begin) / 1000.0)
                cpu[name].append(_children_cpu_us() - used)
            runs["restored"].append(restored.first_vend_ms())
        restored.close()
        cpu["restored"] = restored.cpu_us
        _make_writable(root)
    ratio = p50([a / b for a, b in zip(runs["shipped"], runs["bare"], strict=True)])
    without = p50([a / b for a, b in zip(runs["source"], runs["bare"], strict=True)])
    record("built artefact: import handler + first vend (table hit), p50", us(p50(runs["shipped"])))
    record("bare 3.13 'import boto3' + one client (bytecode), p50", us(p50(runs["bare"])))
    record("  built cold start ÷ bare boto3", f"{ratio:.2f}×", "≤ 1.15×", ratio <= 1.15)
    record("  same artefact without bytecode ÷ bare boto3", f"{without:.2f}×")
    restored_ratio = p50([a / b for a, b in zip(runs["restored"], runs["bare"], strict=True)])
    record(
        "restored first vend (fork of the initialized artefact; table hit), p50", us(p50(runs["restored"]))
    )
    record("  restored first vend ÷ bare boto3", f"{restored_ratio:.2f}×", "≤ 1.0×", restored_ratio <= 1.0)
    for name, label in (("shipped", "built cold start"), ("restored", "restored first vend")):
        cpu_ratio = p50([a / b for a, b in zip(cpu[name], cpu["bare"], strict=True)])
        record(f"  {label} ÷ bare boto3, CPU time (p50 {us(p50(cpu[name]))})", f"{cpu_ratio:.2f}×")


def _children_cpu_us() -> float:
    """User and system CPU of the finished child processes so far, in microseconds."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (used.ru_utime + used.ru_stime) * 1e6


def _layer_size(layer: Path) -> None:
    unpacked = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as scratch:
        archive = shutil.make_archive(str(Path(scratch) / "layer"), "zip", layer.parent, "python")
        zipped = Path(archive).stat().st_size
    record("dependencies layer, unpacked / zipped", f"{unpacked / 1e6:.1f} MB / {zipped / 1e6:.1f} MB")


def _bare_boto3(python: str, bare_dir: Path, child_env: dict[str, str]) -> dict[str, str]:
    """boto3 and the layer's own pins of its dependencies, compiled and read-only; the environment to run
    it with."""
    from tools.lambda_layout import pins, pip_target, set_writable

    versions = pins()
    pip_target(
        bare_dir,
        [
            f"boto3=={REQUIRED_BOTO3}",
            "s3transfer",
            *(f"{n}=={versions[n]}" for n in ("botocore", "jmespath", "python-dateutil", "six", "urllib3")),
        ],
    )
    subprocess.run(
        [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(bare_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    set_writable(bare_dir, False)
    return {**child_env, "PYTHONPATH": str(bare_dir), "PYTHONDONTWRITEBYTECODE": "1"}


def _make_writable(root: Path) -> None:
    from tools.lambda_layout import set_writable

    for folder in root.iterdir():
        set_writable(folder, True)


def memory(child_env: dict[str, str]) -> None:
    say("\nmemory (peak RSS of a handler process)")
    small, large = _rss(child_env, 10, 1), _rss(child_env, 10_000, 1000)
    ratio = large / small
    record("after 10 vends (1 scope set)", f"{small / 1024:.1f} MiB")
    record("after 10,000 vends (1,000 scope sets)", f"{large / 1024:.1f} MiB")
    record("  ratio", f"{ratio:.2f}×", "≤ 1.2×", ratio <= 1.2)


def _rss(child_env: dict[str, str], vends: int, sets: int) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.rss_child", str(vends), str(sets)],
        env=child_env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])
