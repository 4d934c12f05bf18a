"""Issue 11: the operator's cache tool, with DynamoDB permissions only; it never prints a token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from local.stack import LocalStack
from tests.integration.conftest import budget, direct
from token_client.cache_tool import CacheTool

pytestmark = pytest.mark.integration


def test_status_lists_each_scope_set_with_its_fingerprint_and_never_the_token(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    vendor = make_vendor()
    idm = vendor.vend(direct("fr:idm:*"), budget())
    vendor.vend(direct("fr:am:* fr:idm:*"), budget())
    tool = CacheTool(fresh_stack.table_name, fresh_stack.client("dynamodb"))

    sets = {s.scopes: s for s in tool.status()}
    assert set(sets) == {"fr:idm:*", "fr:am:* fr:idm:*"}
    from token_client.client import fingerprint

    assert sets["fr:idm:*"].fingerprint == fingerprint(idm.token.access_token)
    assert 880 < (sets["fr:idm:*"].seconds_left or 0) <= 899
    assert not sets["fr:idm:*"].lease_held
    text = tool.status_text() + tool.status_text(as_json=True)
    assert idm.token.access_token not in text


def test_flush_one_scope_set_then_the_next_vend_mints(make_vendor: Any, fresh_stack: LocalStack) -> None:
    vendor = make_vendor()
    vendor.vend(direct("fr:idm:*"), budget())
    vendor.vend(direct("fr:am:*"), budget())
    tool = CacheTool(fresh_stack.table_name, fresh_stack.client("dynamodb"))

    assert tool.flush(tool.targets(["fr:idm:*"])) == 1
    assert [s.scopes for s in tool.status()] == ["fr:am:*"]
    assert make_vendor().vend(direct("fr:idm:*"), budget()).tier == "minted"


def test_the_cli_status_and_flush(make_vendor: Any, fresh_stack: LocalStack) -> None:
    make_vendor().vend(direct("fr:idm:*"), budget())
    env = {**os.environ, **fresh_stack.aws_env}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "token_client", "cache", *args, "--table", fresh_stack.table_name],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    status = cli("status", "--json")
    assert status.returncode == 0, status.stderr
    assert [s["scopes"] for s in json.loads(status.stdout)] == ["fr:idm:*"]
    refused = cli("flush", "--all")  # no terminal to confirm on
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    flushed = cli("flush", "--all", "--yes")
    assert (flushed.returncode, flushed.stdout.strip()) == (0, "flushed 1 item(s)")


def test_an_unknown_table_is_exit_7_with_a_hint(fresh_stack: LocalStack) -> None:
    """Issue 22: a misspelled table is a mistake to fix, not "retry later" (exit 6)."""
    result = subprocess.run(
        [sys.executable, "-m", "token_client", "cache", "status", "--table", "no-such-table"],
        capture_output=True,
        text=True,
        env={**os.environ, **fresh_stack.aws_env},
        check=False,
        timeout=60,
    )
    assert result.returncode == 7
    assert result.stderr.count("\n") == 1
    assert "no table no-such-table" in result.stderr
