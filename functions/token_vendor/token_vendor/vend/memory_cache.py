"""The per-execution-environment cache: bounded LRU, thread safe.

Each entry remembers when this container last saw the shared item (``checked_at``): a warm container
re-reads the item at least every ``RECHECK_SECONDS`` (CONTRACT section 8), so a flush or a retirement
elsewhere reaches the whole fleet within a minute, at one table read per scope set per minute.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from token_vendor.kernel.cached_token import CachedToken

DEFAULT_MAX_ENTRIES = 256
RECHECK_SECONDS = 60.0


class MemoryCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max = max_entries
        self._items: OrderedDict[str, tuple[CachedToken, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedToken | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            self._items.move_to_end(key)
            return entry[0]

    def get_checked(self, key: str, now: float) -> CachedToken | None:
        """The token, unless the shared item is due for a re-read (then None: take the slow path)."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None or not 0 <= now - entry[1] < RECHECK_SECONDS:
                return None
            self._items.move_to_end(key)
            return entry[0]

    def put(self, key: str, token: CachedToken, checked_at: float) -> None:
        """Keep ``token`` (never replacing a fresher one), as seen in the shared item at ``checked_at``."""
        with self._lock:
            current = self._items.get(key)
            if current is not None and current[0].expires_at > token.expires_at:
                self._items[key] = (current[0], checked_at)  # the item was read: the check is done
                return
            self._items[key] = (token, checked_at)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)
