"""Issue 36: ``aic-token exec`` runs a command with a fresh token in its environment, never in its argv;
the exit code is the command's; when no token can be had the command does not run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack
from tests.e2e.conftest import aic_token

pytestmark = pytest.mark.e2e

# The child: says it is up, waits for the test to read its argv, calls the stand-in's IDM with the token
# from its environment, prints the status and exits 3 (so the exit code is visibly the child's own).
CHILD = """\
import os, sys, urllib.request
print("ready", flush=True)
sys.stdin.readline()
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ[sys.argv[2]]})
try:
    status = urllib.request.urlopen(request, timeout=10).status
except urllib.error.HTTPError as refused:
    status = refused.code
print("status", status, "expires_at", os.environ["AIC_TOKEN_EXPIRES_AT"].isdigit(), flush=True)
sys.exit(3)
"""


def _env(local_lambda: Any) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL_LAMBDA": local_lambda.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.parametrize("variable", [None, "FRODO_BEARER_TOKEN"], ids=["default variable", "--env NAME"])
def test_exec_gives_the_child_a_token_in_its_environment_and_never_in_argv(
    variable: str | None, local_lambda: Any, fresh_stack: LocalStack, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    users = fresh_stack.standin.base_url + "/openidm/managed/alpha_user"
    name = variable or "AIC_ACCESS_TOKEN"
    chosen = ["--env", variable] if variable else []
    argv = [sys.executable, "-m", "token_client", "exec", "--function", "token-vendor", "--scope", "fr:idm:*",
            *chosen, "--", sys.executable, str(script), users, name]  # fmt: skip
    child = subprocess.Popen(
        argv, env=_env(local_lambda), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        assert child.stdout.readline() == "ready\n"
        # exec replaces aic-token: the same process is now the command; read its argv while it runs.
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
        ps = subprocess.run(
            ["ps", "-ww", "-o", "args=", "-p", str(child.pid)], check=False, capture_output=True, text=True
        )
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=60)
    finally:
        child.kill() if child.poll() is None else None
    assert fresh_stack.standin.exchanges == 1
    token = fresh_stack.standin.issued_tokens()[-1]  # the one the child used (its call answered 200)
    assert cmdline[:2] == [sys.executable.encode(), str(script).encode()]
    assert not any(token.encode() in part for part in cmdline)
    assert ps.returncode == 0
    assert str(script) in ps.stdout
    assert token not in ps.stdout
    assert out == "status 200 expires_at True\n", err
    assert child.returncode == 3
    assert token not in err


def test_exec_without_a_token_does_not_run_the_command(
    local_lambda: Any, fresh_stack: LocalStack, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    result = aic_token(
        "exec", "--function", "no-such-vendor", "--scope", "fr:idm:*", "--",
        sys.executable, "-c", f"open({str(marker)!r}, 'w')", env=_env(local_lambda),
    )  # fmt: skip

    assert result.returncode == 7
    assert result.stderr.count("\n") == 1
    assert "no function no-such-vendor" in result.stderr
    assert not marker.exists()


def test_exec_a_command_that_is_not_found_is_127(local_lambda: Any, fresh_stack: LocalStack) -> None:
    result = aic_token(
        "exec", "--function", "token-vendor", "--scope", "fr:idm:*", "--", "no-such-command-here",
        env=_env(local_lambda),
    )  # fmt: skip

    assert result.returncode == 127
    assert result.stderr == "aic-token exec: no-such-command-here: command not found\n"
