"""One simulated history: N execution environments running the real ``TokenVendor``, several callers each.

The scenario comes from the seed (``scenarios.py``: environments, callers and their requests, clock skew up
to ±2 s, AIC's behaviour, DynamoDB faults and latency, crashes and stalls, and a flavour). Here the world is
built (``world.py``), the vendors are wired to it as production wires them (``BoundedClient`` around the AWS
clients), a weakening is applied if asked (``weakenings.py``), and the history runs. The referee
(``referee.py``) judges the lease as it happens; ``invariants.py`` judges the rest at the end.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from tests.simulation.invariants import check
from tests.simulation.referee import Referee
from tests.simulation.scenarios import SCOPE_SETS, AicProfile, Outcome, Request, Scenario
from tests.simulation.weakenings import weakened
from tests.simulation.world import (
    Actor,
    CoopLock,
    Crash,
    Hang,
    Observations,
    Scheduler,
    SimDynamoDB,
    SimKMS,
)
from token_vendor.adapters.aic.assertion import Assertion
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint, _Retryable, map_oauth_error
from token_vendor.adapters.aws.bounded_client import BoundedClient
from token_vendor.adapters.aws.envelope import Envelope
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.adapters.aws.key_source import ServiceAccountKey, key_from_jwk
from token_vendor.adapters.aws.kms_signer import KmsSigner
from token_vendor.kernel.cached_token import CachedToken, fingerprint
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import TokenVendorError
from token_vendor.kernel.scopes import normalise_scopes
from token_vendor.kernel.settings import load_settings
from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest
from token_vendor.vend import fleet_lease, retirement
from token_vendor.vend.locks import KeyLocks
from token_vendor.vend.memory_cache import MemoryCache
from token_vendor.vend.vending import Clocks, TokenVendor
from token_vendor.wiring import compose_vendor

TENANT = "openam-sim.id.forgerock.io"
TABLE = "sim-tokens"
LEASE_SECONDS = 10.0


@lru_cache(maxsize=1)
def service_key() -> ServiceAccountKey:
    """One real RSA key per process (loading one takes ~40 ms): the assertions are really signed."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private))
    key, kid = key_from_jwk(jwk)
    return ServiceAccountKey("sim-account", key, kid, "v1")


class SimKeys:
    """The key source, already loaded (the simulation is about the cache protocol, not Secrets Manager)."""

    def current(self, max_age: float | None = None) -> ServiceAccountKey:
        return service_key()

    def refresh_now(self) -> ServiceAccountKey:
        return service_key()

    def loaded_version(self) -> str | None:
        return "v1"


class SimEndpoint(TokenEndpoint):
    """The real retry, backoff and Retry-After logic; the simulated AIC behind ``_attempt``."""

    def __init__(
        self,
        scheduler: Scheduler,
        observed: Observations,
        profile: AicProfile,
        rng: random.Random,
        wall: Callable[[], float],
        referee: Referee,
        table: SimDynamoDB,
    ) -> None:
        super().__init__(
            "https://openam-sim.id.forgerock.io/am/oauth2/access_token",
            pool=None,
            sleep=scheduler.sleep,
            wall_clock=wall,
            rng=random.Random(rng.random()),
        )
        self._scheduler = scheduler
        self._observed = observed
        self._profile = profile
        self._decide = random.Random(rng.random())
        self._referee = referee
        self._table = table

    def _attempt(
        self, assertion: Assertion, scopes: tuple[str, ...], deadline: Deadline
    ) -> tuple[str, int, str | None]:
        scheduler = self._scheduler
        scheduler.point("AIC exchange")
        scope = " ".join(scopes)
        key = cache_key(TENANT, "sim-account", tuple(scopes))
        latency = self._profile.latency * (0.5 + self._decide.random())
        cut = latency >= deadline.remaining()  # the real endpoint cuts every read at the deadline
        duration = deadline.remaining() if cut else latency
        attempt = self._referee.attempt_begins(key, scope, duration, self._table.items.get(key))
        scheduler.sleep(duration)
        if cut:
            self._referee.attempt_ends(attempt, key, "cut")
            raise _Retryable("no complete answer within the time left")
        if self._profile.invalid_scope:
            self._observed.rejections[scope] = self._observed.rejections.get(scope, 0) + 1
            self._referee.attempt_ends(attempt, key, "rejected")
            body = json.dumps(
                {
                    "error": "invalid_scope",
                    "error_description": f"Unsupported scope for service account: {scope}",
                }
            ).encode()
            raise map_oauth_error(400, body)
        flapping = scheduler.now < self._profile.flap_until
        if self._profile.down or flapping or self._decide.random() < self._profile.fail_rate:
            self._referee.attempt_ends(attempt, key, "failed")
            kind = self._decide.choice(["503", "429", "timeout"])
            if kind == "429":
                raise _Retryable("HTTP 429", retry_after=float(self._decide.choice([1, 3])))
            raise _Retryable("HTTP 503" if kind == "503" else "timed out")
        self._referee.attempt_ends(attempt, key, "ok")
        self._observed.exchanges[scope] = self._observed.exchanges.get(scope, 0) + 1
        token = f"sim-{scope}-{len(self._observed.issued)}"
        self._observed.issued[token] = (scope, self._wall_clock() + self._profile.lifetime)
        return token, self._profile.lifetime, scope


@dataclass
class History:
    scenario: Scenario
    outcomes: list[Outcome]
    observed: Observations
    log: list[str]
    steps: int
    crashes: int
    violations: list[str]
    aic: dict[str, int] = field(default_factory=dict)  # AIC's attempts by answer: ok, failed, rejected, cut


def _seed_token(ddb: SimDynamoDB, observed: Observations, scope: str, left: float, lifetime: int) -> None:
    """A token minted before the history began (one refresh cycle to come, or an expired one)."""
    token = f"sim-seeded-{scope}"
    expires_at = left
    observed.issued[token] = (scope, expires_at)
    key = cache_key(TENANT, "sim-account", tuple(scope.split()))
    ddb.items[key] = {
        "pk": {"S": key},
        "expires_at": {"N": repr(float(expires_at))},
        "ttl": {"N": str(int(expires_at) + 1)},
        "scope": {"S": scope},
        "token": {"S": token},
        "fingerprint": {"S": fingerprint(token)},
        "lifetime": {"N": repr(float(lifetime))},
    }


def run_history(
    scenario: Scenario,
    *,
    choose: Callable[[int], int] | None = None,
    weaken: str | None = None,
) -> History:
    rng = random.Random(scenario.seed * 7919 + 1)
    observed = Observations()
    scheduler = Scheduler(choose or rng.randrange)
    decide = random.Random(scenario.seed * 104729 + 3)
    crashes = [0]

    def crash(actor: Actor) -> bool:
        if scenario.crash_rate and decide.random() < scenario.crash_rate:
            crashes[0] += 1
            return True
        return False

    scheduler.crash = crash
    scheduler.stall = lambda actor: (
        decide.uniform(5, 2 * LEASE_SECONDS)
        if scenario.stall_rate and decide.random() < scenario.stall_rate
        else 0.0
    )
    referee = Referee(scheduler, scenario.skews, observed.violations)
    ddb = SimDynamoDB(
        scheduler,
        observed,
        random.Random(rng.random()),
        fault_rate=scenario.ddb_faults,
        latency=scenario.aws_latency,
        referee=referee,
    )
    if scenario.seeded_token_left is not None:
        for scope in SCOPE_SETS:
            _seed_token(ddb, observed, scope, scenario.seeded_token_left, scenario.profile.lifetime)
    holder_rng = random.Random(rng.random())
    outcomes: list[Outcome] = []
    with weakened(weaken) as weaken_vendor:
        vendors = _vendors(scenario, scheduler, observed, ddb, referee, rng)
        for vendor in vendors:
            weaken_vendor(vendor)
        if scenario.seed % 3 == 0:  # issue 25: the scheduled refresh runs in env0 as an actor of its own
            schedule = _schedule(scheduler, vendors[0], scenario, referee)
            scheduler.spawn(Actor("env0/schedule", 0, schedule))
        # Lease holder values from the seed, in every room that draws them.
        original_secrets = fleet_lease.secrets
        fleet_lease.secrets = retirement.secrets = _SeededSecrets(holder_rng)  # type: ignore[assignment]
        try:
            for index, (env, requests) in enumerate(scenario.callers):
                run = _caller(scenario, scheduler, vendors[env], referee, ddb, outcomes, index, env, requests)
                scheduler.spawn(Actor(f"env{env}/caller{index}", env, run))
            try:
                scheduler.run()
            except Hang as exc:
                observed.violations.append(f"invariant 4: the history hung ({exc})")
                scheduler.abandon()
        finally:
            fleet_lease.secrets = retirement.secrets = original_secrets  # type: ignore[assignment]
    observed.lapses = referee.lapses_excused + referee.lapses_unexcused
    violations = list(observed.violations) + check(
        scenario, outcomes, observed, referee, crashes[0], scheduler.now
    )
    aic: dict[str, int] = {}
    for attempt in referee.attempts:
        aic[attempt.result or "unanswered"] = aic.get(attempt.result or "unanswered", 0) + 1
    return History(scenario, outcomes, observed, scheduler.log, scheduler.steps, crashes[0], violations, aic)


def _signer(
    scenario: Scenario, scheduler: Scheduler, rng: random.Random, bounded: random.Random
) -> SimKeys | KmsSigner:
    """The key already loaded, or (keyless histories) the real ``KmsSigner`` over a simulated KMS."""
    if not scenario.keyless:
        return SimKeys()
    from tests.simulation.signing import SIGNING_ALIAS, SimSigningKMS

    kms = SimSigningKMS(
        scheduler, random.Random(rng.random()), service_key().private_key, scenario.aws_latency
    )
    signer = KmsSigner(
        SIGNING_ALIAS,
        BoundedClient(kms, sleep=scheduler.sleep, rng=bounded),
        account_id="sim-account",
        clock=lambda: scheduler.now,
    )
    signer._lock = CoopLock(scheduler)  # type: ignore[assignment]
    return signer


def _vendors(
    scenario: Scenario,
    scheduler: Scheduler,
    observed: Observations,
    ddb: SimDynamoDB,
    referee: Referee,
    rng: random.Random,
) -> list[TokenVendor]:
    """One real ``TokenVendor`` per execution environment, its AWS clients bounded as in production."""
    # A seeded token is stored in plain text (as an unencrypted deployment stores it), so those histories
    # run unencrypted; the others alternate, so the envelope's KMS calls are scheduled too.
    encrypted = scenario.seeded_token_left is None and scenario.seed % 2 == 0
    vendors = []
    for env in range(scenario.envs):
        skew = scenario.skews[env]

        def wall(skew: float = skew) -> float:
            return scheduler.now + skew

        settings = load_settings(
            {
                "TENANT_FQDN": TENANT,
                "SERVICE_ACCOUNT_SECRET_ID": "sim/secret",
                "SERVICE_ACCOUNT_ID": "sim-account",
                "TOKEN_CACHE_TABLE": TABLE,
                "DIRECT_INVOKE_SCOPES": "*",
                **({"TOKEN_CACHE_KEY_ID": "alias/sim"} if encrypted else {}),
            }
        )
        bounded_rng = random.Random(rng.random())
        envelope = None
        if encrypted:
            kms = SimKMS(scheduler, random.Random(rng.random()), scenario.aws_latency)
            bounded_kms = BoundedClient(kms, sleep=scheduler.sleep, rng=bounded_rng)
            envelope = Envelope("alias/sim", bounded_kms, clock=wall, context={"purpose": "token-cache"})
            envelope._lock = CoopLock(scheduler)  # type: ignore[assignment]
        jti_rng = random.Random(rng.random())
        vendor = compose_vendor(
            settings,
            key_source=_signer(scenario, scheduler, rng, bounded_rng),  # type: ignore[arg-type]
            endpoint=SimEndpoint(scheduler, observed, scenario.profile, rng, wall, referee, ddb),
            dynamodb=BoundedClient(ddb, sleep=scheduler.sleep, rng=bounded_rng),  # type: ignore[arg-type]
            envelope=envelope,
            memory=MemoryCache(),
            clocks=Clocks(wall=wall, sleep=scheduler.sleep, signing=time.time),
            lease_seconds=LEASE_SECONDS,
            new_jti=lambda jti_rng=jti_rng: f"jti-{jti_rng.getrandbits(64):016x}",
            locks=KeyLocks(lambda: CoopLock(scheduler)),
        )
        vendors.append(vendor)
    return vendors


def _caller(
    scenario: Scenario,
    scheduler: Scheduler,
    vendor: TokenVendor,
    referee: Referee,
    ddb: SimDynamoDB,
    outcomes: list[Outcome],
    index: int,
    env: int,
    requests: list[Request],
) -> Callable[[], None]:
    """One caller: its requests in order, each with its own deadline; what each got goes to ``outcomes``."""
    think = random.Random(scenario.seed * 31 + index)

    def run() -> None:
        gap = scenario.start_gaps[index] if index < len(scenario.start_gaps) else 0.0
        if gap:
            scheduler.sleep(gap)
        last: CachedToken | None = None
        me = scheduler.current()
        for number, request in enumerate(requests):
            if number and scenario.think[1]:
                scheduler.sleep(think.uniform(*scenario.think))
            stalled_before = me.stalled
            outcome = Outcome(f"caller{index}", env, request, scheduler.now)
            outcomes.append(outcome)
            rejected = fingerprint(last.access_token) if request.report and last is not None else None
            outcome.reported = rejected
            key = cache_key(TENANT, "sim-account", tuple(request.scope.split()))
            stored = ddb.items.get(key, {}).get("fingerprint", {}).get("S")
            outcome.named_stored = rejected is not None and rejected == stored
            me.request = outcome
            referee.vend_begins(me)
            vend = VendRequest(normalise_scopes(request.scope), request.min_validity, DIRECT_CALLER, rejected)
            deadline = Deadline.after(request.deadline, lambda: scheduler.now)
            try:
                result = vendor.vend(vend, deadline)
                outcome.token = result.token
                outcome.rate_limited = result.retire_rate_limited
                last = result.token
            except TokenVendorError as exc:
                outcome.error = exc.name
            except Crash:
                outcome.error = "crashed"
                outcome.ended = scheduler.now
                raise
            except Exception as exc:
                outcome.error = f"escaped {type(exc).__name__}: {exc}"
            outcome.ended = scheduler.now
            outcome.stalled = me.stalled - stalled_before
            if rejected is not None and not outcome.named_stored:
                # A holder that stalled before its write stores the token its environment already served:
                # a report of it names the stored token once that write lands (soak seeds 826300020,
                # 826294604, 826317362), and the contract mints its replacement.
                landed = ddb.stored.get(key, [])
                outcome.named_stored = any(
                    outcome.started <= at <= outcome.ended and fp == rejected for at, fp in landed
                )
            me.request = None

    return run


def _schedule(
    scheduler: Scheduler, vendor: TokenVendor, scenario: Scenario, referee: Referee
) -> Callable[[], None]:
    """EventBridge Scheduler's runs: one soon, then every minute, each with its own 30 s deadline."""
    from token_vendor.vend.scheduled_refresh import ScheduledRefresher

    class NoMetrics:
        def add_metric(self, name: str, unit: str, value: float) -> None:
            return None

    skew = scenario.skews[0]
    refresher = ScheduledRefresher(
        vendor,
        vendor.table,
        tenant=TENANT,
        account_ref=vendor.account_ref,
        keep_warm_seconds=3600,
        clock=lambda: scheduler.now + skew,
        metrics=NoMetrics(),
    )

    def run() -> None:
        scheduler.sleep(1.0 + (scenario.seed % 7))
        me = scheduler.current()
        for _ in range(3):
            me.request = _ScheduleRun()
            referee.vend_begins(me)
            # A failed run is the next run's business; the invariants judge what callers got. Anything
            # else escaping is a bug, not a quiet end of the schedule (the simulated table once refused
            # the refresh counter's BETWEEN and every run's thread died unseen).
            try:
                refresher.run(Deadline.after(30.0, lambda: scheduler.now))
            except TokenVendorError:
                pass
            except Exception as exc:
                referee.violations.append(f"invariant 4: the scheduled refresh escaped {type(exc).__name__}")
                return
            me.request = None
            scheduler.sleep(60.0)

    return run


@dataclass
class _ScheduleRun:
    """What the referee reads of a scheduled run: a caller's default need, no report."""

    caller: str = "schedule"
    need: float = 120.0
    reported: str | None = None


class _SeededSecrets:
    """Lease holder values from the history's seed, so histories replay byte for byte."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def token_hex(self, nbytes: int = 16) -> str:
        return f"{self._rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def history_digest(history: History) -> str:
    """The scheduler's log and what every caller got (issue 24): a replay matches outcome for outcome."""
    outcomes = [
        f"{o.caller} {o.env} {o.started:.6f} {o.ended:.6f} {o.error} "
        f"{fingerprint(o.token.access_token) if o.token else None} {o.rate_limited}"
        for o in history.outcomes
    ]
    return hashlib.sha256("\n".join([*history.log, *outcomes]).encode()).hexdigest()[:16]
