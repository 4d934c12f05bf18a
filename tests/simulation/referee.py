"""The referee: watches the simulated table and AIC as the history runs, and judges from what it saw.

Nothing here reads the vendor's condition expressions: the referee knows which actor made each call (the
scheduler runs one at a time), each environment's clock, and the items before and after each write. From
that alone it checks the lease (one live holder; a holder never works past its lease; only the live holder
stores a token), and it records every AIC attempt, the retirement windows and the lapses, for the
invariants judged at the end (``invariants.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.simulation.world import Actor, Scheduler

Item = dict[str, dict[str, Any]]
HOLDER_MARGIN = 0.5  # a holder's work ends this long before its lease (CONTRACT section 8)
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 60.0


@dataclass
class AicAttempt:
    scope: str
    actor: str
    env: int
    started: float  # true time
    ended: float = 0.0
    result: str = ""  # ok | failed | rejected | cut (no answer before the deadline)
    refresh: bool = False  # by a lease holder while the stored token still met its caller's need


@dataclass
class Lease:
    holder: str
    actor: str
    env: int
    stalled_at_grant: float  # the actor's stalls when its vend began
    open: bool = True


@dataclass
class RetirementWindow:
    key: str
    scope: str
    old_fingerprint: str
    old_expires_at: float  # in the storing writer's clock (within the skews of every reader's)
    reporter: str
    started: float
    ended: float | None = None


@dataclass
class Referee:
    scheduler: Scheduler
    skews: list[float]
    violations: list[str]
    attempts: list[AicAttempt] = field(default_factory=list)
    lapses_excused: int = 0  # leases granted over a holder that had crashed or stalled
    lapses_unexcused: int = 0
    retirements: list[RetirementWindow] = field(default_factory=list)
    _leases: dict[tuple[str, str], Lease] = field(default_factory=dict)  # (actor, key) -> its lease
    _by_holder: dict[str, Lease] = field(default_factory=dict)
    _backoff: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (not before, last)
    _failed_refresh: dict[tuple[str, str], float] = field(default_factory=dict)  # -> when AIC answered
    _stalled_at_vend: dict[str, float] = field(default_factory=dict)

    def clock(self, actor: Actor) -> float:
        return self.scheduler.now + self.skews[actor.env]

    def _flag(self, text: str) -> None:
        if text not in self.violations:
            self.violations.append(text)

    # -- a vend begins: what the actor held in earlier vends is over ------------------------------------
    def vend_begins(self, actor: Actor) -> None:
        self._stalled_at_vend[actor.name] = actor.stalled
        # Leases from its earlier vends are not this vend's to use; left open, they may still lapse.
        for name, key in list(self._leases):
            if name == actor.name:
                del self._leases[(name, key)]
                self._failed_refresh.pop((name, key), None)  # a release that never landed records nothing

    # -- DynamoDB ----------------------------------------------------------------------------------------
    def updated(self, key: str, before: Item | None, after: Item) -> None:
        """An UpdateItem was applied: a lease granted, renewed or released (seen in the items alone)."""
        actor = self.scheduler.current()
        old_holder = (before or {}).get("lease_holder", {}).get("S")
        new_holder = after.get("lease_holder", {}).get("S")
        if new_holder is not None and new_holder != old_holder:
            self._granted(actor, key, before, new_holder)
        elif old_holder is not None and new_holder is None:
            lease = self._by_holder.get(old_holder)
            if lease is not None and lease.actor != actor.name:
                # Only a lease's own holder gives it back (issue 33): a holder that outlived its lease
                # must not free the next holder's.
                self._flag(f"invariant 3: {actor.name} released a lease {lease.actor} holds")
            if lease is not None:
                lease.open = False
                answered = self._failed_refresh.pop((lease.actor, key), None)
                if answered is not None:
                    self._note_failed_refresh(key, answered)

    def _granted(self, actor: Actor, key: str, before: Item | None, holder: str) -> None:
        previous = (before or {}).get("lease_holder", {}).get("S")
        if previous is not None and "lease_until" in (before or {}):
            lapsed = self._by_holder.get(previous)
            # The holder works until its lease less its margin, by its own clock; here in true time.
            ends = float(before["lease_until"]["N"]) - HOLDER_MARGIN  # type: ignore[index]
            ends -= self.skews[lapsed.env] if lapsed is not None else self.skews[actor.env]
            # A taker frozen between composing its request and the write landing compares stale times
            # (the fence keeps the table right); any other taker must find the lease over.
            frozen = actor.stalled > self._stalled_at_vend.get(actor.name, 0.0)
            if ends > self.scheduler.now and not frozen:
                self._flag(
                    f"invariant 3: {actor.name} was granted the lease while another holder could work "
                    f"{ends - self.scheduler.now:.2f}s more"
                )
            elif lapsed is not None and lapsed.open:
                holder_actor = self._actor(lapsed.actor)
                crashed = holder_actor is None or holder_actor.env in self.scheduler.dead_envs
                stalled = holder_actor is not None and holder_actor.stalled > lapsed.stalled_at_grant
                if crashed or stalled:
                    self.lapses_excused += 1
                else:
                    self.lapses_unexcused += 1
        # Stalled since its vend began (even while its lease write was on the way): excused if it lapses.
        self._failed_refresh.pop((actor.name, key), None)
        lease = Lease(holder, actor.name, actor.env, self._stalled_at_vend.get(actor.name, 0.0))
        self._leases[(actor.name, key)] = lease
        self._by_holder[holder] = lease
        request = actor.request
        stored = (before or {}).get("fingerprint", {}).get("S")
        if request is not None and request.reported is not None and request.reported == stored:
            self.retirements.append(
                RetirementWindow(
                    key,
                    (before or {}).get("scope", {}).get("S", ""),
                    stored,
                    float(before["expires_at"]["N"]),  # type: ignore[index]
                    request.caller,
                    self.scheduler.now,
                )
            )

    def stored(self, key: str, before: Item | None, item: Item) -> None:
        """A PutItem with a token was applied: only the live holder of the lease may have written it."""
        actor = self.scheduler.current()
        lease = self._leases.get((actor.name, key))
        live = (before or {}).get("lease_holder", {}).get("S")
        if lease is None or not lease.open or lease.holder != live:
            self._flag(f"invariant 3: {actor.name} stored a token without holding the lease (fenced out)")
        if lease is not None:
            lease.open = False
        self._backoff.pop(key, None)  # a stored token ends the refresh backoff
        for window in self.retirements:
            if window.key == key and window.ended is None:
                window.ended = self.scheduler.now

    # -- AIC -------------------------------------------------------------------------------------------
    def attempt_begins(self, key: str, scope: str, duration: float, item: Item | None) -> AicAttempt:
        actor = self.scheduler.current()
        attempt = AicAttempt(scope, actor.name, actor.env, self.scheduler.now)
        self.attempts.append(attempt)
        lease = self._leases.get((actor.name, key))
        if lease is None or not lease.open:
            return attempt  # no lease: minting without the shared cache (or the table is down)
        now = self.clock(actor)
        live = (item or {}).get("lease_holder", {}).get("S")
        until = float(item["lease_until"]["N"]) if item and "lease_until" in item else None
        # A process frozen at any point of this vend (even between writing its lease and the write
        # landing) cannot keep a promise about time; the fence keeps its late work out of the table.
        frozen = actor.stalled > self._stalled_at_vend.get(actor.name, 0.0)
        if not frozen and (live != lease.holder or until is None or until < now + duration):
            self._flag(
                f"invariant 3: {actor.name} called AIC past its lease (lease "
                f"{'taken over' if live != lease.holder else f'ends {(until or 0) - now:.2f}s ahead'}, "
                f"the call lasts {duration:.2f}s)"
            )
        request = actor.request
        need = request.need if request is not None else 120.0
        left = float(item["expires_at"]["N"]) - now if item and "expires_at" in item else 0.0
        stored = (item or {}).get("fingerprint", {}).get("S")
        replacing = request is not None and request.reported is not None and request.reported == stored
        attempt.refresh = left >= need and not replacing  # a reported token is replaced, not refreshed
        if attempt.refresh and key in self._backoff and not frozen:
            not_before, backoff = self._backoff[key]
            if now < not_before:
                self._flag(
                    f"invariant 7: {actor.name} retried a failed refresh {not_before - now:.2f}s before the "
                    f"fleet's backoff of {backoff:.0f}s ended"
                )
        return attempt

    def attempt_ends(self, attempt: AicAttempt, key: str, result: str) -> None:
        attempt.ended = self.scheduler.now
        attempt.result = result
        actor = self.scheduler.current()
        frozen = actor.stalled > self._stalled_at_vend.get(actor.name, 0.0)
        if attempt.refresh and result in ("failed", "cut") and not frozen:
            self._failed_refresh[(attempt.actor, key)] = self.clock(actor)

    def _note_failed_refresh(self, key: str, answered: float) -> None:
        """The holder gave the lease back after a failed refresh: the fleet backs off from its answer
        (by the holder's clock; the holder may compute it a little later, never earlier)."""
        _, last = self._backoff.get(key, (0.0, 0.0))
        backoff = BACKOFF_FIRST if not last else min(BACKOFF_MAX, last * 2)
        self._backoff[key] = (answered + backoff, backoff)

    def _actor(self, name: str) -> Actor | None:
        return next((a for a in self.scheduler.actors if a.name == name), None)
