"""Issue 16: the per-key locks and the remembered rejections under concurrency (no sockets)."""

from __future__ import annotations

import threading

from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.adapters.aws.token_table import Rejection
from token_vendor.vend.locks import MAX_REMEMBERED_REJECTIONS, KeyLocks, RememberedRejections


def test_a_key_waited_for_keeps_its_one_lock_however_many_other_keys_come_and_go() -> None:
    """A lock handed out but not yet acquired used to count as unlocked and be pruned: after 1,030 other
    keys the same key got a second lock, and two threads of one container were on its slow path."""
    locks = KeyLocks()
    inside = threading.Event()
    release = threading.Event()
    overlaps: list[int] = []
    active = [0]
    guard = threading.Lock()

    def slow_path() -> None:
        with locks.hold("k"):
            with guard:
                active[0] += 1
                overlaps.append(active[0])
            inside.set()
            release.wait(5)
            with guard:
                active[0] -= 1

    first = threading.Thread(target=slow_path)
    first.start()
    inside.wait(5)
    waiter = threading.Thread(target=slow_path)  # holds a reference, waits for the lock
    waiter.start()
    for i in range(1030):  # churn through other keys
        with locks.hold(f"other-{i}"):
            pass
    release.set()
    first.join(5)
    waiter.join(5)

    assert max(overlaps) == 1
    assert len(locks) == 0  # nothing lingers once nobody holds or waits


def test_the_lock_map_holds_only_keys_in_use() -> None:
    locks = KeyLocks()
    with locks.hold("a"), locks.hold("b"):
        assert len(locks) == 2
    assert len(locks) == 0


def test_pruning_remembered_rejections_is_safe_while_others_insert() -> None:
    """The dict was rebuilt without a lock while another thread inserted ("dictionary changed size
    during iteration" inside an exception handler, which skipped the lease release)."""
    now = [1000.0]
    rejections = RememberedRejections(lambda: now[0])
    errors: list[BaseException] = []

    def insert(offset: int) -> None:
        try:
            for i in range(2000):
                until = now[0] + (60 if i % 2 else -1)  # half of them already expired
                rejections.put(f"k{offset}-{i}", Rejection("invalid_scope", (), until))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert errors == []
    assert len(rejections._items) <= MAX_REMEMBERED_REJECTIONS


def test_a_hashed_cache_key_is_not_a_key_any_scope_set_can_spell() -> None:
    long_set = tuple(f"x:{i:02d}:" + "s" * 100 for i in range(12))
    hashed = cache_key("t", "a", long_set)
    assert '"' in hashed  # no RFC 6749 scope contains '"'
    digest = hashed.rsplit(" ", 1)[-1]
    assert cache_key("t", "a", (f"sha256:{digest}",)) != hashed
