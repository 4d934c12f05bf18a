"""docs/tools.md: every ``aic-token exec`` line parses as the CLI does, names the variable the cited tool
reads, quotes its scopes; the curl line runs against the local stack with the token never in an argv."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack
from tests.e2e.conftest import aic_token
from token_client.exec_tool import parser

pytestmark = pytest.mark.e2e
DOC = Path(__file__).resolve().parents[2] / "docs" / "tools.md"
EXPECTED_VARIABLE = {"fr-config-pull": "FCM_ACCESS_TOKEN", "terraform": "PINGAIC_TF_ACCESS_TOKEN"}


def _exec_lines() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line.strip() for line in lines if line.strip().startswith("aic-token exec") and "[" not in line]


def test_the_page_has_an_exec_line_per_tool_that_takes_a_token() -> None:
    commands = {shlex.split(line)[shlex.split(line).index("--") + 1] for line in _exec_lines()}
    assert commands == {"sh", "fr-config-pull", "terraform"}
    assert "frodo cannot take an access token from outside" in DOC.read_text()


@pytest.mark.parametrize("line", _exec_lines())
def test_each_exec_line_parses_and_names_the_tool_s_variable(line: str) -> None:
    words = shlex.split(line)
    at = words.index("--")
    args = parser().parse_args(words[2:at])
    command = words[at + 1]

    assert all("*" in s for s in args.scope)
    assert "--scope 'fr:" in line  # the globs are quoted on the page
    assert args.env == ([EXPECTED_VARIABLE[command]] if command in EXPECTED_VARIABLE else None)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install curl)")
def test_the_curl_line_calls_idm_with_the_token_from_stdin(
    local_lambda: Any, fresh_stack: LocalStack
) -> None:
    line = next(line for line in _exec_lines() if " sh -c " in line)
    words = shlex.split(line)
    tenant = fresh_stack.standin.base_url.removeprefix("http://")
    words[-1] = (
        words[-1]
        .replace("https://", "http://")
        .replace("curl -sS", "curl -sS -w ' %{http_code}' -o /dev/null")
    )
    env = {**os.environ, "AWS_ENDPOINT_URL_LAMBDA": local_lambda.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "TENANT": tenant}  # fmt: skip

    result = aic_token(*words[1:], env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"
    assert fresh_stack.standin.exchanges == 1
