"""Ends a connection at its exchange's deadline: the one bound a per-read timeout cannot give.

urllib3's read timeout bounds each socket read, so a token endpoint that drips a byte per read could hold
an exchange (and the fleet's lease) long past the Lambda's end. One daemon thread per execution
environment watches the exchanges in flight and, when one's deadline passes, shuts its connection's
socket down. ``shutdown(2)`` wakes a blocked ``recv`` with end of file, so http.client raises, urllib3
discards the connection and the exchange ends as timed out. Nothing wraps the socket: http.client, ssl
and urllib3 keep working on the objects they made (docs/decisions.md, "The exchange's deadline").
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable

# Until a connection has its socket (a TLS handshake in progress), look again this often.
RECHECK_SECONDS = 0.01
MAX_STALE = 64


class Watchdog:
    """Calls ``expire`` for each watched item whose time has come, unless it was released first."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tickets = itertools.count()
        self.restart()

    def restart(self) -> None:
        """Forget the watches and the thread, in a copy of a process (a fork, a SnapStart restore): the
        thread did not come along, and its lock may have been held when the copy was made. The next
        ``watch`` starts a thread of this process."""
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._watched: dict[int, Callable[[], bool]] = {}
        self._fired: set[int] = set()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread looks next; a later item needs no wake-up call

    def watch(self, at: float, expire: Callable[[], bool]) -> int:
        """``expire`` runs on the watchdog's thread at ``at`` (monotonic); it returns False to be asked
        again a moment later (nothing to act on yet). Returns a ticket for ``release``."""
        with self._cond:
            ticket = next(self._tickets)
            self._watched[ticket] = expire
            heapq.heappush(self._heap, (at, ticket))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="exchange-watchdog", daemon=True)
                self._thread.start()
            if at < self._wake_at:  # waking the thread costs a context switch: only when it must look sooner
                self._cond.notify()
            return ticket

    def release(self, ticket: int) -> bool:
        """Stop watching; True if the item was released before its deadline fired."""
        with self._cond:
            self._watched.pop(ticket, None)
            fired = ticket in self._fired
            self._fired.discard(ticket)
            if len(self._heap) > MAX_STALE and len(self._heap) > 2 * len(self._watched):
                # released items stay in the heap until their time: drop them when they pile up
                self._heap = [entry for entry in self._heap if entry[1] in self._watched]
                heapq.heapify(self._heap)
            return not fired

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > self._clock():
                    self._wake_at = self._heap[0][0] if self._heap else math.inf
                    wait = None if not self._heap else self._heap[0][0] - self._clock()
                    self._cond.wait(wait)
                self._wake_at = -math.inf  # busy: the loop looks at the heap again before it waits
                _, ticket = heapq.heappop(self._heap)
                expire = self._watched.get(ticket)
                if expire is None:
                    continue  # released in time
                # Called under the lock: release() cannot return True while the socket is being shut.
                if expire():
                    self._watched.pop(ticket, None)
                    self._fired.add(ticket)
                else:
                    heapq.heappush(self._heap, (self._clock() + RECHECK_SECONDS, ticket))


def shut_down(sock: socket.socket | None) -> bool:
    """Shut a connection's socket for reading and writing; False when there is no socket yet.

    ``socket.socket.shutdown`` is called on the plain socket even for TLS: ``SSLSocket.shutdown`` would also
    drop the TLS object that a reader on another thread is still using.
    """
    if sock is None:
        return False
    with contextlib.suppress(OSError):  # already closed or never connected: nothing left to wake
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    return True
