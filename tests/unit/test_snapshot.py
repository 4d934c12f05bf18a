"""Issue 37: what a SnapStart restore redoes (token_vendor/kernel/snapshot.py), without a fork.

A restore, unlike a fork, re-seeds nothing by itself and calls only the runtime's hook: these tests call
what that hook calls (``snapshot.renew``) and check its effect. The fork stand-in for a whole restore runs
against the built artefact (tests/built/test_restore.py).
"""

from __future__ import annotations

import random
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws.bounded_client import BoundedClient
from token_vendor.adapters.http.watchdog import Watchdog
from token_vendor.kernel import snapshot


def _draws(rng: random.Random) -> list[float]:
    return [rng.random() for _ in range(4)]


def test_a_restore_reseeds_the_jitter_of_the_token_endpoint_and_the_aws_clients() -> None:
    class Client:
        meta = types.SimpleNamespace(events=types.SimpleNamespace(register=lambda *a, **k: None))

    generators = [TokenEndpoint("http://127.0.0.1:1/token")._rng, BoundedClient(Client())._rng]
    copies = [random.Random() for _ in generators]
    for copy, rng in zip(copies, generators, strict=True):
        copy.setstate(rng.getstate())

    snapshot.renew()

    for copy, rng in zip(copies, generators, strict=True):
        assert _draws(rng) != _draws(copy)  # restored environments do not retry in step


def test_a_restore_reseeds_the_random_module_botocore_draws_its_jitter_from() -> None:
    before = random.getstate()
    snapshot.renew()
    assert random.getstate() != before


def test_a_restore_lets_the_watchdog_start_a_thread_of_its_own() -> None:
    watchdog = Watchdog()
    snapshot.after_restore(watchdog.restart)
    fired = threading.Event()
    # the snapshot's process ran the watchdog's thread
    watchdog.release(watchdog.watch(time.monotonic() + 3600, lambda: True))
    old_thread = watchdog._thread

    snapshot.renew()
    ticket = watchdog.watch(0.0, lambda: fired.set() is None)

    assert fired.wait(5.0)
    assert watchdog._thread is not old_thread
    assert not watchdog.release(ticket)  # it fired


def test_renewals_do_not_keep_their_objects_alive() -> None:
    watchdog = Watchdog()
    snapshot.after_restore(watchdog.restart)
    count = len(snapshot._renewals)
    del watchdog
    snapshot.renew()
    assert len(snapshot._renewals) < count


def test_install_registers_with_the_runtime_hooks_when_lambda_provides_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = tmp_path / f"{snapshot.RUNTIME_HOOKS}.py"
    hooks.write_text(
        "registered, before = [], []\n"
        "def register_after_restore(f, *a, **k):\n    registered.append(f)\n"
        "def register_before_snapshot(f, *a, **k):\n    before.append(f)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(snapshot, "_installed", False)
    forks: list[object] = []
    monkeypatch.setattr(snapshot.os, "register_at_fork", lambda **kw: forks.append(kw["after_in_child"]))
    try:
        assert snapshot.install() is True
        hooks_module = sys.modules[snapshot.RUNTIME_HOOKS]
        assert hooks_module.registered == [snapshot.renew]  # type: ignore[attr-defined]
        assert hooks_module.before == [snapshot.before_snapshot]  # type: ignore[attr-defined]
        assert forks == [snapshot.renew]
    finally:
        sys.modules.pop(snapshot.RUNTIME_HOOKS, None)


def test_install_without_the_runtime_hooks_still_renews_after_a_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "_installed", False)
    forks: list[object] = []
    monkeypatch.setattr(snapshot.os, "register_at_fork", lambda **kw: forks.append(kw["after_in_child"]))
    assert snapshot.install() is False  # no snapshot_restore_py outside Lambda
    assert forks == [snapshot.renew]


def test_before_a_snapshot_what_later_invocations_need_is_imported_and_nothing_started() -> None:
    threads = set(threading.enumerate())  # earlier tests' threads may end meanwhile: only new ones count
    snapshot.before_snapshot()
    assert all(name in sys.modules for name in snapshot.SNAPSHOT_IMPORTS)
    assert set(threading.enumerate()) - threads == set()  # imports only: no thread, no connection
