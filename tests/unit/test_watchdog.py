"""The exchange watchdog: fires once at the deadline, never after a release, and asks again when the
connection has no socket yet."""

from __future__ import annotations

import socket
import threading

from token_vendor.adapters.http.watchdog import Watchdog, shut_down


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_past_deadline_fires_and_release_reports_it() -> None:
    fired = threading.Event()
    dog = Watchdog(Clock())

    ticket = dog.watch(999.0, lambda: fired.set() or True)

    assert fired.wait(5)
    assert dog.release(ticket) is False  # the caller learns its connection was shut


def test_a_released_watch_never_fires() -> None:
    calls: list[int] = []
    clock = Clock()
    dog = Watchdog(clock)
    ticket = dog.watch(1001.0, lambda: calls.append(1) or True)

    assert dog.release(ticket) is True
    clock.now = 2000.0
    witness = threading.Event()
    dog.watch(1500.0, lambda: witness.set() or True)  # a later item proves the thread has moved past
    assert witness.wait(5)
    assert calls == []


def test_nothing_to_shut_yet_is_asked_again() -> None:
    answers = iter([False, False, True])
    done = threading.Event()
    calls: list[int] = []

    def expire() -> bool:
        calls.append(1)
        answer = next(answers)
        if answer:
            done.set()
        return answer

    class Ticking(Clock):
        def __call__(self) -> float:
            self.now += 0.005  # time passes as the watchdog looks at it
            return self.now

    Watchdog(Ticking()).watch(0.0, expire)

    assert done.wait(5)
    assert len(calls) == 3


def test_shut_down_wakes_a_reader_with_end_of_file() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert shut_down(None) is False
        assert shut_down(left) is True
        assert left.recv(10) == b""
        assert shut_down(left) is True  # twice is harmless
