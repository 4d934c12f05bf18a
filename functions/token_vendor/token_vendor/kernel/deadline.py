"""Time budgets: never work past the Lambda's remaining time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Kept back from the Lambda's remaining time to answer and log after the last attempt.
SAFETY_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class Deadline:
    """An absolute point on ``clock`` (monotonic seconds) that work must finish before."""

    at: float
    clock: Callable[[], float]

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float]) -> Deadline:
        return cls(clock() + seconds, clock)

    @classmethod
    def from_context(cls, context: object, clock: Callable[[], float], default: float = 30.0) -> Deadline:
        get_remaining = getattr(context, "get_remaining_time_in_millis", None)
        remaining = get_remaining() / 1000.0 if callable(get_remaining) else default
        return cls.after(max(0.0, remaining - SAFETY_MARGIN_SECONDS), clock)

    def earliest(self, other: Deadline) -> Deadline:
        """The sooner of two deadlines on the same clock."""
        return self if self.at <= other.at else other

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self.remaining() <= 0.0
