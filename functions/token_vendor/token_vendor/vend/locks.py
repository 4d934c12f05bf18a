"""In-process coordination of one execution environment: per-key locks and remembered rejections.

Both are shared by the threads of one container (tests, a local server); Lambda itself runs one
invocation per environment at a time. Kept apart from the vend path so the locking rules are read alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from token_vendor.adapters.aws.token_table import Rejection

MAX_REMEMBERED_REJECTIONS = 256


class KeyLocks:
    """One lock per cache key, alive while someone holds or waits for it (so never two for one key)."""

    def __init__(self, new_lock: Callable[[], Any] = threading.Lock) -> None:
        self._guard = threading.Lock()
        self._new_lock = new_lock  # the simulation passes a lock that yields to its scheduler
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, holders and waiters]

    @contextmanager
    def hold(self, key: str, timeout: float = -1) -> Iterator[bool]:
        """Hold the key's lock; yields False (without it) when ``timeout`` seconds pass first."""
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = [self._new_lock(), 0]
            entry[1] += 1
        acquired = False
        try:
            acquired = entry[0].acquire(timeout=timeout)
            yield acquired
        finally:
            if acquired:
                entry[0].release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class RememberedRejections:
    """AIC's rejections remembered in this container (the table remembers them for the fleet)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, Rejection] = {}

    def get(self, key: str) -> Rejection | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: str, rejection: Rejection) -> None:
        with self._lock:
            if len(self._items) >= MAX_REMEMBERED_REJECTIONS:  # forget the expired ones first
                now = self._clock()
                self._items = {k: r for k, r in self._items.items() if r.until > now}
                while len(self._items) >= MAX_REMEMBERED_REJECTIONS:
                    self._items.pop(next(iter(self._items)))
            self._items[key] = rejection
