"""Compiles what ``sam build`` produced to bytecode for the Lambda runtime's CPython (3.13).

Lambda's ``/var/task`` and ``/opt`` are read-only, so modules shipped without a matching ``.pyc`` are
compiled from source at every cold start (measured: 2.8x the cold start of the same artefact with
bytecode). The ``.pyc`` files are unchecked-hash (PEP 552): the interpreter does not compare them with the
source's timestamp, which the deployment zip does not preserve anyway.

Bytecode is version-specific, so only a 3.13 interpreter can write it. One is looked for on PATH, under
pyenv, and through uv. Without one the build still succeeds, says so loudly, and ``make build-check``
reports the shortfall. Run by ``make build``; writes ``.aws-sam/build/bytecode.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BUILD = Path(".aws-sam/build")
RUNTIME_VERSION = (3, 13)
# Where each built folder lives on Lambda: tracebacks then name the real path.
TARGETS = {
    BUILD / "TokenVendorFunction": "/var/task",
    BUILD / "TokenApiFunction": "/var/task",
    BUILD / "KeyRotationFunction": "/var/task",
    BUILD / "DependenciesLayer" / "python": "/opt/python",
    BUILD / "TokenClientLayer" / "python": "/opt/python",
}
MARKER = BUILD / "bytecode.json"


def _is_runtime_python(candidate: str | None) -> bool:
    if not candidate or not os.access(candidate, os.X_OK):
        return False
    probe = subprocess.run(  # noqa: S603 - an interpreter path we found, asked for its version only
        [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() == "True"


def find_runtime_python() -> str | None:
    """A CPython 3.13: $PYTHON313, python3.13 on PATH, pyenv's versions, or uv's."""
    candidates = [os.environ.get("PYTHON313"), shutil.which("python3.13")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += [str(p) for p in sorted(Path(pyenv_root).glob("versions/3.13*/bin/python3.13"))]
    uv = shutil.which("uv")
    if uv:
        found = subprocess.run(  # noqa: S603 - uv's own lookup, no download
            [uv, "python", "find", "--no-python-downloads", "3.13"],
            capture_output=True,
            text=True,
            check=False,
        )
        candidates.append(found.stdout.strip() or None)
    return next((c for c in candidates if _is_runtime_python(c)), None)


def main() -> int:
    python = find_runtime_python()
    if python is None:
        bar = "!" * 100
        print(
            f"{bar}\ncompile_build: NO BYTECODE - no CPython 3.13 found (PATH, pyenv, uv).\n"
            "The artefacts will compile every imported module at each cold start on Lambda.\n"
            "Install Python 3.13 (e.g.\n"
            f"'uv python install 3.13' or pyenv) and run 'make build' again.\n{bar}",
            file=sys.stderr,
        )
        MARKER.write_text(json.dumps({"compiled": False}))
        return 0
    for folder, runtime_path in TARGETS.items():
        if not folder.is_dir():
            continue
        # Some packages ship files that are not valid 3.13 source (templates, tests); compileall reports
        # them and build-check counts the coverage, so a non-zero exit here is not fatal.
        subprocess.run(  # noqa: S603 - the 3.13 interpreter compiling our own build output
            [
                python,
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-d",
                runtime_path,
                str(folder),
            ],
            check=False,
            stdout=subprocess.DEVNULL,
        )
    version = subprocess.run(  # noqa: S603
        [python, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    MARKER.write_text(json.dumps({"compiled": True, "python": version, "interpreter": python}))
    print(f"compile_build: bytecode compiled with {version} (unchecked-hash .pyc)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
