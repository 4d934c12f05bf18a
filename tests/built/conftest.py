"""The built artefact laid out as Lambda runs it, once for every test of ``make test-built``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.compile_build import BUILD, find_runtime_python
from tools.lambda_layout import lay_out, set_writable


@pytest.fixture(scope="session")
def runtime_python() -> str:
    python = find_runtime_python()
    if python is None:
        pytest.skip("no CPython 3.13 on this machine (PATH, pyenv, uv): the built artefact cannot be run")
    if not (BUILD / "bytecode.json").exists():
        pytest.skip("no built artefact: run 'make build' first ('make test-built' does)")
    return python


@pytest.fixture(scope="session")
def lambda_root(
    runtime_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("lambda")
    env = lay_out(root)
    yield root, env
    set_writable(root, True)
