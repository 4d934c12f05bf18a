"""Issue 37: the built artefact survives a copy of its initialized process, as after a SnapStart restore.

``restore_child.py`` runs the init phase under CPython 3.13 in the Lambda layout, vends once (a mint: its
connections are pooled and the exchange's watchdog thread runs), then forks children (memory copied,
other threads gone: what a restore looks like) that vend. What users rely on after a restore:

- init loaded nothing secret and opened nothing: no AWS call, one thread, no socket;
- each child's token is the one AIC issued for its scopes, from an assertion with a fresh ``jti``;
- no child reuses a connection of the parent's (nor another child's);
- the deadline still cuts a dripping token endpoint in a child (its watchdog works after the copy).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.aic_standin import Fault
from local.aws import create_table
from local.stack import LocalStack

CHILD = Path(__file__).with_name("restore_child.py")
DRIP_DEADLINE_MS = 2000
# The vendor keeps a safety margin inside the Lambda's remaining time; scheduling on a shared machine
# gets the rest. Without the watchdog the dripped answer takes 65 bytes x 0.2 s = 13 s.
DRIP_SLACK_MS = 1000


class Restorable:
    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [python, "-S", str(CHILD)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.init = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the child ended (exit {self.process.wait(timeout=30)})"
        document: dict[str, Any] = json.loads(line)
        return document

    def _send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def vend(self, scope: str) -> dict[str, Any]:
        self._send(op="vend", scope=scope)
        return self._read()

    def fork(self, scope: str, remaining_ms: int = 10_000) -> dict[str, Any]:
        self._send(op="fork", scope=scope, remaining_ms=remaining_ms)
        child, parent = self._read(), self._read()
        assert parent.get("status") == 0, (child, parent)
        return {**child, "parent_sockets": parent["parent_sockets"]}

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def restored(
    runtime_python: str, lambda_root: tuple[Path, dict[str, str]], stack: LocalStack
) -> Iterator[dict[str, Any]]:
    table = "restore-tokens"
    create_table(stack.client("dynamodb"), table)
    stack.put_secret(stack.secret_for(stack.key))
    env = {
        **stack.function_env(TOKEN_CACHE_TABLE=table, DIRECT_INVOKE_SCOPES="fr:*"),
        "PATH": "/usr/bin:/bin",
        **lambda_root[1],
    }
    ports = stack.standin.token_request_ports
    process = Restorable(runtime_python, env)
    try:
        marks = [len(ports())]
        parent = process.vend("fr:idm:*")
        marks.append(len(ports()))
        first = process.fork("fr:am:*")
        marks.append(len(ports()))
        second = process.fork("fr:am:* fr:idm:*")
        marks.append(len(ports()))
        seen = ports()
        by_process = [set(seen[a:b]) for a, b in itertools.pairwise(marks)]
        stack.standin.set_sticky_fault(Fault("drip", delay=0.2))
        try:
            dripped = process.fork("fr:idc:esv:read", remaining_ms=DRIP_DEADLINE_MS)
        finally:
            stack.standin.set_sticky_fault(None)
        yield {
            "init": process.init,
            "parent": parent,
            "children": [first, second],
            "ports": by_process,
            "dripped": dripped,
        }
    finally:
        process.close()


def _issued(stack: LocalStack) -> dict[str, tuple[str, frozenset[str]]]:
    """Fingerprint -> (jti, scopes) of every token the stand-in issued."""
    jtis = stack.standin.issued_jtis()
    scopes = {token: issued.scopes for token, issued in stack.standin.state.issued.items()}
    return {
        hashlib.sha256(token.encode()).hexdigest()[:12]: (jti, scopes[token]) for token, jti in jtis.items()
    }


def test_init_loads_no_key_or_token_and_opens_no_connection_or_thread(restored: dict[str, Any]) -> None:
    assert restored["init"]["python"].startswith("3.13.")
    assert restored["init"]["init_calls"] == []  # no GetSecretValue, Decrypt or GetItem before a snapshot
    assert restored["init"]["init_threads"] == ["MainThread"]
    assert restored["init"]["init_sockets"] == 0


def test_each_restored_copy_vends_the_token_aic_issued_for_its_scopes(
    restored: dict[str, Any], stack: LocalStack
) -> None:
    issued = _issued(stack)
    for vended, scopes in zip(
        [restored["parent"], *restored["children"]],
        [{"fr:idm:*"}, {"fr:am:*"}, {"fr:am:*", "fr:idm:*"}],
        strict=True,
    ):
        assert set(vended["scope"].split()) == scopes
        assert vended["expires_in"] > 800
        assert issued[vended["fingerprint"]][1] == frozenset(scopes)


def test_every_copy_signs_with_a_fresh_jti(restored: dict[str, Any], stack: LocalStack) -> None:
    issued = _issued(stack)
    jtis = [issued[v["fingerprint"]][0] for v in [restored["parent"], *restored["children"]]]
    assert all(jtis)
    assert len(set(jtis)) == len(jtis)


def test_no_copy_reuses_a_connection_of_the_parent_or_of_another_copy(restored: dict[str, Any]) -> None:
    parent_ports, first_ports, second_ports = restored["ports"]
    for child in restored["children"]:
        assert child["parent_sockets"] > 0  # the parent had pooled connections to hand down
        assert child["inherited_open"] == 0  # closed in the copy before its first request
        assert child["reused"] == 0
    assert parent_ports  # each exchanged at the stand-in
    assert first_ports
    assert second_ports
    assert not first_ports & parent_ports
    assert not second_ports & (parent_ports | first_ports)


def test_the_deadline_still_cuts_a_dripping_token_endpoint_in_a_copy(restored: dict[str, Any]) -> None:
    dripped = restored["dripped"]
    assert dripped.get("error") == "UpstreamUnavailable"
    assert dripped["elapsed_ms"] < DRIP_DEADLINE_MS + DRIP_SLACK_MS
