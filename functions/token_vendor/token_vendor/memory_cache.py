"""The per-execution-environment cache: bounded LRU, thread safe."""

from __future__ import annotations

import threading
from collections import OrderedDict

from token_vendor.cached_token import CachedToken

DEFAULT_MAX_ENTRIES = 256


class MemoryCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max = max_entries
        self._items: OrderedDict[str, CachedToken] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedToken | None:
        with self._lock:
            token = self._items.get(key)
            if token is not None:
                self._items.move_to_end(key)
            return token

    def put(self, key: str, token: CachedToken) -> None:
        with self._lock:
            current = self._items.get(key)
            if current is not None and current.expires_at > token.expires_at:
                return  # never replace a fresher token with an older one
            self._items[key] = token
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)
