"""Issue 10: what ``make build`` ships runs under CPython 3.13 the way Lambda runs it.

The built function and layer are laid out as ``/var/task`` and ``/opt/python`` (copies, made read-only),
the layer's arm64 native extensions are swapped for their x86_64 twins of the same pinned versions so they
load here, and the handler runs in a fresh 3.13 interpreter with ``PYTHONDONTWRITEBYTECODE=1`` and no
site-packages of its own against the local stack: a direct vend, an HTTP event and a refused request.
Run by ``make test-built`` after ``make build`` (CI does it after ``make build-check``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack
from tools.lambda_layout import files_under

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(
    runtime_python: str,
    lambda_root: tuple[Path, dict[str, str]],
    stack: LocalStack,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    from local.aws import create_table

    table = "built-artifact-tokens"
    create_table(stack.client("dynamodb"), table)
    stack.put_secret(stack.secret_for(stack.key))
    env = {
        **stack.function_env(
            TOKEN_CACHE_TABLE=table,
            CALLER_POLICY=json.dumps({"arn:aws:iam::123456789012:role/reporting": ["fr:idm:*"]}),
            DIRECT_INVOKE_SCOPES="fr:*",
        ),
        "PATH": "/usr/bin:/bin",
        **lambda_root[1],
    }
    before = files_under(lambda_root[0])
    result_file = tmp_path_factory.mktemp("result") / "result.json"
    exchanges = stack.standin.exchanges
    completed = subprocess.run(
        [
            runtime_python,
            "-S",
            str(Path(__file__).with_name("lambda_child.py")),
            str(result_file),
            str(REPO / "events"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(result_file.read_text())
    outcome["written"] = sorted(files_under(lambda_root[0]) - before)
    outcome["exchanges"] = stack.standin.exchanges - exchanges
    return outcome


def test_it_runs_under_the_runtimes_python(run: dict[str, Any]) -> None:
    assert run["python"].startswith("3.13.")


def test_a_direct_vend_mints_once_and_the_http_event_shares_the_token(run: dict[str, Any]) -> None:
    assert run["direct"]["scope"] == "fr:idm:*"
    assert run["direct"]["expires_in"] > 800
    assert run["http"] == {"status": 200, "scope": "fr:idm:*"}
    assert run["exchanges"] == 1


def test_a_refused_request_raises_its_stable_name(run: dict[str, Any]) -> None:
    assert run["refused"] == {"error": "InvalidScope"}


def test_every_shipped_module_loads_from_bytecode_and_nothing_is_written(run: dict[str, Any]) -> None:
    assert run["shipped_modules"] > 50
    assert run["without_bytecode"] == []
    assert run["written"] == []


def test_the_native_extensions_are_the_layers_packages(run: dict[str, Any]) -> None:
    assert any(name.startswith("cryptography.hazmat.bindings._rust") for name in run["native"])
