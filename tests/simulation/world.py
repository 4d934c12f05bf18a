"""A deterministic world for the real vendor code: scheduler, virtual clocks, DynamoDB, KMS and AIC.

Every actor (one caller of one execution environment) is a thread, but only one runs at a time: it runs
until its next I/O call or sleep, then hands the baton back, and the seeded scheduler picks who goes next.
Virtual time moves only when every live actor sleeps. So one seed gives one history, byte for byte.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError

from tests.simulation.expressions import Condition, Item, apply_update


class Crash(BaseException):
    """The execution environment died: its actors do no more I/O (BaseException: nothing catches it)."""


class Hang(Exception):
    """The history ran past its step limit."""


@dataclass
class Actor:
    name: str
    env: int
    run: Callable[[], None]
    thread: threading.Thread | None = None
    wake: float = 0.0
    done: bool = False
    stalled: float = 0.0  # seconds of injected stalls (a frozen process misses any deadline)
    go: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))  # its turn to run
    request: Any = None  # what the actor is doing now (its Outcome), for the referee


class Scheduler:
    """Hands one baton among actor threads; each choice comes from ``choose`` (seeded or scripted)."""

    def __init__(self, choose: Callable[[int], int], *, max_steps: int = 20000) -> None:
        self.choose = choose
        self.now = 0.0
        self.steps = 0
        self.max_steps = max_steps
        self.actors: list[Actor] = []
        self.dead_envs: set[int] = set()
        # One baton: the scheduler hands it to one actor's semaphore and waits on its own for it back, so
        # a step wakes exactly one thread.
        self._back = threading.Semaphore(0)
        self._local = threading.local()
        self.log: list[str] = []
        self.stall: Callable[[Actor], float] = lambda actor: 0.0  # extra sleep injected at a step
        self.crash: Callable[[Actor], bool] = lambda actor: False

    # -- called from actor threads ------------------------------------------------------------------
    def current(self) -> Actor:
        actor: Actor = self._local.actor
        return actor

    def point(self, label: str) -> None:
        """An I/O call is about to happen: let the scheduler pick who runs next."""
        actor = self.current()
        if actor.env in self.dead_envs:
            raise Crash
        if self.crash(actor):
            self.dead_envs.add(actor.env)
            self.log.append(f"{self.now:8.3f} env{actor.env} CRASH before {label}")
            raise Crash
        stall = self.stall(actor)
        if stall:
            self.log.append(f"{self.now:8.3f} {actor.name} stalls {stall:.1f}s before {label}")
            actor.wake = self.now + stall
            actor.stalled += stall
        self.log.append(f"{self.now:8.3f} {actor.name} {label}")
        self._yield(actor)
        if actor.env in self.dead_envs:
            raise Crash

    def sleep(self, seconds: float) -> None:
        actor = self.current()
        actor.wake = self.now + max(0.0, seconds)
        self.log.append(f"{self.now:8.3f} {actor.name} sleeps {seconds:.3f}")
        self._yield(actor)
        if actor.env in self.dead_envs:
            raise Crash

    def _yield(self, actor: Actor) -> None:
        self._back.release()
        actor.go.acquire()

    # -- the loop -----------------------------------------------------------------------------------
    def spawn(self, actor: Actor) -> None:
        def body() -> None:
            self._local.actor = actor
            actor.go.acquire()
            try:
                actor.run()
            except Crash:
                pass
            finally:
                actor.done = True
                self._back.release()

        actor.thread = threading.Thread(target=body, name=actor.name, daemon=True)
        self.actors.append(actor)
        actor.thread.start()

    def run(self) -> None:
        while True:
            live = [a for a in self.actors if not a.done]
            if not live:
                return
            ready = [a for a in live if a.wake <= self.now]
            if not ready:
                self.now = min(a.wake for a in live)
                continue
            self.steps += 1
            if self.steps > self.max_steps:
                raise Hang(f"more than {self.max_steps} steps")
            chosen = ready[self.choose(len(ready))] if len(ready) > 1 else ready[0]
            chosen.go.release()
            self._back.acquire()

    def abandon(self) -> None:
        """After a failure: release every waiting thread so the process can go on (they crash)."""
        self.dead_envs.update(a.env for a in self.actors)
        for actor in self.actors:
            if not actor.done:
                actor.go.release()
                self._back.acquire(timeout=1.0)


class CoopLock:
    """A lock for code the scheduler runs: a waiter sleeps in virtual time instead of blocking the world."""

    POLL = 0.05

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        end = self._scheduler.now + timeout
        while not self._lock.acquire(blocking=False):
            if not blocking or (timeout >= 0 and self._scheduler.now >= end):
                return False
            self._scheduler.sleep(self.POLL)
        return True

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> CoopLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class Observations:
    """What the simulated services saw, for the invariants."""

    exchanges: dict[str, int] = field(default_factory=dict)  # scope set -> successful exchanges
    issued: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (scope, expires_at)
    lapses: int = 0  # leases granted over a lapsed holder
    rejections: dict[str, int] = field(default_factory=dict)  # scope set -> AIC rejections answered
    violations: list[str] = field(default_factory=list)
    writes: int = 0


def client_error(code: str, operation: str, item: Item | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": f"simulated {code}"}}
    if item is not None:
        response["Item"] = item
    return ClientError(response, operation)  # type: ignore[arg-type]


class _Events:
    """Enough of botocore's event system for ``BoundedClient`` to set each call's read timeout."""

    def __init__(self) -> None:
        self.handlers: list[Callable[..., None]] = []

    def register(self, name: str, handler: Callable[..., None]) -> None:
        self.handlers.append(handler)


class _Meta:
    def __init__(self) -> None:
        self.events = _Events()


class _Request:
    def __init__(self) -> None:
        self.context: dict[str, Any] = {}


class Latency:
    """Each call takes 0.1-2 s in a brownout; a call slower than the read timeout the vendor set through
    ``BoundedClient`` is cut there, and may or may not have been applied (as with a real timeout)."""

    def __init__(self, scheduler: Scheduler, rng: random.Random, span: tuple[float, float] | None) -> None:
        self.meta = _Meta()
        self._scheduler = scheduler
        self._delays = rng  # its own generator: a service's other draws (faults, TTL, keys) stay apart
        self._span = span

    def wait(self, operation: str) -> bool:
        """Sleep the call's latency; True when it was cut by the read timeout (the caller raises after
        deciding whether the call was applied)."""
        if self._span is None:
            return False
        request = _Request()
        for handler in self.meta.events.handlers:
            handler(request=request)
        timeout = float(request.context.get("read_timeout", 2.0))
        latency = self._delays.uniform(*self._span)
        self._scheduler.sleep(min(latency, timeout))
        return latency > timeout

    def applied_anyway(self) -> bool:
        return self._delays.random() < 0.5


def read_timeout(operation: str) -> ReadTimeoutError:
    return ReadTimeoutError(endpoint_url=f"https://sim/{operation}")


class SimDynamoDB(Latency):
    """Linearizable conditional reads and writes over the vendor's wire format, with lazy TTL, faults
    and latency; every applied write is shown to the referee."""

    def __init__(
        self,
        scheduler: Scheduler,
        observed: Observations,
        rng: random.Random,
        *,
        fault_rate: float = 0.0,
        latency: tuple[float, float] | None = None,
        referee: Any = None,
    ) -> None:
        super().__init__(scheduler, random.Random(rng.random()), latency)
        self.items: dict[str, Item] = {}
        # key -> (time, fingerprint) of every token stored: what a reporter's report may have named
        self.stored: dict[str, list[tuple[float, str]]] = {}
        self._observed = observed
        self._rng = rng
        self._fault_rate = fault_rate
        self.referee = referee

    def _maybe_fail(self, operation: str) -> None:
        if self._fault_rate and self._rng.random() < self._fault_rate:
            raise client_error("ProvisionedThroughputExceededException", operation)

    def _live(self, key: str) -> Item | None:
        item = self.items.get(key)
        # Lazy TTL: an item past its ttl may or may not be gone yet (DynamoDB deletes within days).
        expired = item is not None and "ttl" in item and float(item["ttl"]["N"]) < self._scheduler.now - 1
        if expired and self._rng.random() < 0.5:
            del self.items[key]
            return None
        return item

    def get_item(self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = True) -> dict[str, Any]:
        self._scheduler.point("GetItem")
        self._maybe_fail("GetItem")
        if self.wait("GetItem"):
            raise read_timeout("GetItem")
        item = self._live(Key["pk"]["S"])
        return {"Item": {k: dict(v) for k, v in item.items()}} if item else {}

    def put_item(
        self,
        *,
        TableName: str,
        Item: Item,
        ConditionExpression: str,
        ExpressionAttributeValues: dict[str, Any],
        ExpressionAttributeNames: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self._scheduler.point("PutItem")
        self._maybe_fail("PutItem")
        cut = self.wait("PutItem")
        if cut and not self.applied_anyway():
            raise read_timeout("PutItem")
        key = Item["pk"]["S"]
        current = self._live(key)
        condition = Condition(ConditionExpression, ExpressionAttributeNames or {}, ExpressionAttributeValues)
        if not condition.evaluate(current):
            raise client_error("ConditionalCheckFailedException", "PutItem")
        retiring = current is not None and Item.get("retired_fp") == current.get("fingerprint")
        compared = current is not None and "expires_at" in current and "expires_at" in Item and not retiring
        if compared and float(Item["expires_at"]["N"]) < float(current["expires_at"]["N"]):  # type: ignore[index]
            self._observed.violations.append("invariant 3: the table went backwards (an earlier expiry)")
        self.items[key] = {k: dict(v) for k, v in Item.items()}
        if "fingerprint" in Item:
            self.stored.setdefault(key, []).append((self._scheduler.now, Item["fingerprint"]["S"]))
        self._observed.writes += 1
        if self.referee is not None:
            self.referee.stored(key, current, self.items[key])
        if cut:
            raise read_timeout("PutItem")
        return {}

    def update_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ConditionExpression: str,
        ExpressionAttributeValues: dict[str, Any],
        ExpressionAttributeNames: dict[str, str] | None = None,
        ReturnValuesOnConditionCheckFailure: str = "NONE",
        ReturnValues: str = "NONE",
    ) -> dict[str, Any]:
        self._scheduler.point("UpdateItem")
        self._maybe_fail("UpdateItem")
        cut = self.wait("UpdateItem")
        if cut and not self.applied_anyway():
            raise read_timeout("UpdateItem")
        key = Key["pk"]["S"]
        current = self._live(key)
        names = ExpressionAttributeNames or {}
        if not Condition(ConditionExpression, names, ExpressionAttributeValues).evaluate(current):
            old = {k: dict(v) for k, v in current.items()} if current else None
            if cut:
                raise read_timeout("UpdateItem")
            raise client_error(
                "ConditionalCheckFailedException",
                "UpdateItem",
                old if ReturnValuesOnConditionCheckFailure == "ALL_OLD" else None,
            )
        before = {k: dict(v) for k, v in current.items()} if current else None
        self.items[key] = apply_update(
            current or {"pk": {"S": key}}, UpdateExpression, names, ExpressionAttributeValues
        )
        remembered = self.items[key].get("neg_until")
        if remembered is not None and remembered != (before or {}).get("neg_until"):
            scope = key.split("|", 2)[-1]  # a rejection was remembered (seen in the item, not the request)
            if not self._observed.rejections.get(scope):
                self._observed.violations.append(
                    "invariant 5: a negative-cache entry without an AIC rejection"
                )
        if self.referee is not None:
            self.referee.updated(key, before, self.items[key])
        if cut:
            raise read_timeout("UpdateItem")
        return {"Attributes": before} if ReturnValues == "ALL_OLD" and before else {}

    def scan(
        self,
        *,
        TableName: str,
        FilterExpression: str,
        ExpressionAttributeValues: dict[str, Any],
        ExpressionAttributeNames: dict[str, str] | None = None,
        ProjectionExpression: str = "",
        ExclusiveStartKey: dict[str, Any] | None = None,
        Limit: int | None = None,
    ) -> dict[str, Any]:
        """One page: up to ``Limit`` items read (in key order, after ``ExclusiveStartKey``), of which the
        filter (the vendor's own expression) keeps some; ``LastEvaluatedKey`` when more remain."""
        self._scheduler.point("Scan")
        self._maybe_fail("Scan")
        if self.wait("Scan"):
            raise read_timeout("Scan")
        keep = Condition(FilterExpression, ExpressionAttributeNames or {}, ExpressionAttributeValues)
        after = ExclusiveStartKey["pk"]["S"] if ExclusiveStartKey else None
        keys = [key for key in sorted(self.items) if after is None or key > after]
        read = keys[:Limit] if Limit else keys
        items = [self._live(key) for key in read]
        page: dict[str, Any] = {
            "Items": [{k: dict(v) for k, v in i.items()} for i in items if i and keep.evaluate(i)],
            "ScannedCount": len(read),
        }
        if len(read) < len(keys):
            page["LastEvaluatedKey"] = {"pk": {"S": read[-1]}}
        return page


class SimKMS(Latency):
    def __init__(
        self, scheduler: Scheduler, rng: random.Random, latency: tuple[float, float] | None = None
    ) -> None:
        super().__init__(scheduler, random.Random(rng.random()), latency)
        self._rng = rng

    def generate_data_key(self, **_: Any) -> dict[str, Any]:
        self._scheduler.point("KMS GenerateDataKey")
        if self.wait("GenerateDataKey"):
            raise read_timeout("GenerateDataKey")
        plaintext = bytes(self._rng.getrandbits(8) for _ in range(32))
        return {"Plaintext": plaintext, "CiphertextBlob": b"wrapped:" + plaintext}

    def decrypt(self, *, CiphertextBlob: bytes, **_: Any) -> dict[str, Any]:
        self._scheduler.point("KMS Decrypt")
        if self.wait("Decrypt"):
            raise read_timeout("Decrypt")
        if not CiphertextBlob.startswith(b"wrapped:"):
            raise client_error("InvalidCiphertextException", "Decrypt")
        return {"Plaintext": CiphertextBlob[len(b"wrapped:") :]}
