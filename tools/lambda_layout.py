"""Lays out the built artefact as Lambda runs it, on this machine: ``task/`` (the function, Lambda's
``/var/task``) and ``opt/python`` (the dependencies layer), both read-only, with the layer's arm64 native
extensions swapped for their x86_64 twins of the same pinned versions so that they load here.

Used by the built-artefact test (``make test-built``) and the bench (``make bench``).
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / ".aws-sam" / "build"
PINS = REPO / "layers" / "dependencies" / "requirements.txt"
NATIVE_PACKAGES = ("cryptography", "cffi")  # the layer's packages with compiled extensions
X86_PLATFORM = "manylinux2014_x86_64"


def pins() -> dict[str, str]:
    found = {}
    for line in PINS.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            found[name.lower()] = version
    return found


def pip_target(target: Path, requirements: list[str], platform: str | None = None) -> None:
    """Install exact pins into ``target`` for CPython 3.13 (binary wheels only; nothing compiled)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-compile",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        "3.13",
        "--only-binary=:all:",
    ]
    if platform:
        command += ["--platform", platform]
    subprocess.run([*command, *requirements], check=True)  # noqa: S603 - pip, our own pins


def swap_native_extensions(layer: Path, scratch: Path) -> None:
    versions = pins()
    pip_target(scratch, [f"{name}=={versions[name]}" for name in NATIVE_PACKAGES], X86_PLATFORM)
    for arm in layer.rglob("*.so"):
        arm.unlink()
    for twin in scratch.rglob("*.so"):
        target = layer / twin.relative_to(scratch)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(twin, target)
    shutil.rmtree(scratch)


def set_writable(root: Path, writable: bool) -> None:
    bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for item in [root, *root.rglob("*")]:
        mode = item.stat().st_mode
        item.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


def lay_out(root: Path, *, bytecode: bool = True) -> dict[str, str]:
    """Copy the build under ``root``; returns the environment that runs it (PYTHONPATH and friends).

    ``bytecode=False`` drops every ``__pycache__`` (what shipped before issue 10), for comparison.
    """
    ignore = None if bytecode else shutil.ignore_patterns("__pycache__")
    shutil.copytree(BUILD / "TokenVendorFunction", root / "task", ignore=ignore)
    shutil.copytree(BUILD / "DependenciesLayer" / "python", root / "opt" / "python", ignore=ignore)
    swap_native_extensions(root / "opt" / "python", root / "twins")
    set_writable(root / "task", False)
    set_writable(root / "opt", False)
    return {
        "PYTHONPATH": f"{root / 'task'}:{root / 'opt' / 'python'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(root / "task"),
    }


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}
