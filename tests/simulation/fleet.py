"""One simulated history: N execution environments running the real ``TokenVendor``, several callers each.

A scenario is drawn from the seed: environments, callers and their requests, clock skew (up to ±2 s),
AIC's behaviour (latency, 5xx, 429, timeouts, invalid_scope, short lifetimes), DynamoDB throttling, crashes
(an environment dies, maybe holding the lease) and stalls past the lease. The invariants are checked on
what every caller got and on what the simulated services saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

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
from token_vendor import fleet_lease, retirement
from token_vendor.assertion import Assertion
from token_vendor.cached_token import CachedToken, cache_key, fingerprint
from token_vendor.coordination import KeyLocks
from token_vendor.deadline import Deadline
from token_vendor.envelope import Envelope
from token_vendor.errors import TokenVendorError
from token_vendor.key_source import ServiceAccountKey, key_from_jwk
from token_vendor.memory_cache import MemoryCache
from token_vendor.scopes import normalise_scopes
from token_vendor.settings import load_settings
from token_vendor.token_endpoint import TokenEndpoint, _Retryable, map_oauth_error
from token_vendor.token_table import TokenTable
from token_vendor.vend_request import DIRECT_CALLER, VendRequest
from token_vendor.vending import Clocks, TokenVendor

TENANT = "openam-sim.id.forgerock.io"
TABLE = "sim-tokens"
LEASE_SECONDS = 10.0
STABLE_NAMES = {
    "InvalidRequest",
    "InvalidScope",
    "AccessDenied",
    "UpstreamRejected",
    "UpstreamUnavailable",
    "ConfigurationError",
    "InternalError",
}
SCOPE_SETS = ("fr:idm:*", "fr:am:* fr:idm:*")


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


@dataclass
class AicProfile:
    latency: float  # seconds per exchange
    fail_rate: float  # 5xx / 429 / timeouts
    invalid_scope: bool  # the account lacks the scope sets
    lifetime: int  # expires_in of issued tokens
    down: bool  # every exchange fails


class SimEndpoint(TokenEndpoint):
    """The real retry, backoff and Retry-After logic; the simulated AIC behind ``_attempt``."""

    def __init__(
        self,
        scheduler: Scheduler,
        observed: Observations,
        profile: AicProfile,
        rng: random.Random,
        wall: Callable[[], float],
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

    def _attempt(
        self, assertion: Assertion, scopes: tuple[str, ...], deadline: Deadline
    ) -> tuple[str, int, str | None]:
        scheduler = self._scheduler
        scheduler.point("AIC exchange")
        scope = " ".join(scopes)
        latency = self._profile.latency * (0.5 + self._decide.random())
        if latency >= deadline.remaining():  # the real endpoint cuts every read at the deadline
            scheduler.sleep(deadline.remaining())
            raise _Retryable("no complete answer within the time left")
        scheduler.sleep(latency)
        if self._profile.invalid_scope:
            self._observed.rejections[scope] = self._observed.rejections.get(scope, 0) + 1
            body = json.dumps(
                {
                    "error": "invalid_scope",
                    "error_description": f"Unsupported scope for service account: {scope}",
                }
            ).encode()
            raise map_oauth_error(400, body)
        if self._profile.down or self._decide.random() < self._profile.fail_rate:
            kind = self._decide.choice(["503", "429", "timeout"])
            if kind == "429":
                raise _Retryable("HTTP 429", retry_after=float(self._decide.choice([1, 3])))
            raise _Retryable("HTTP 503" if kind == "503" else "timed out")
        self._observed.exchanges[scope] = self._observed.exchanges.get(scope, 0) + 1
        token = f"sim-{scope}-{len(self._observed.issued)}"
        self._observed.issued[token] = (scope, self._wall_clock() + self._profile.lifetime)
        return token, self._profile.lifetime, scope


@dataclass
class Request:
    scope: str
    min_validity: int | None
    report: bool  # report the token this caller got before (AIC refused it)
    deadline: float


@dataclass
class Outcome:
    caller: str
    env: int
    request: Request
    started: float
    ended: float = 0.0
    stalled: float = 0.0  # injected stalls while this request ran
    token: CachedToken | None = None
    error: str | None = None
    reported: str | None = None
    rate_limited: bool = False  # a report within MIN_REFRESH_INTERVAL_SECONDS: the current token, by contract


@dataclass
class Scenario:
    seed: int
    envs: int
    callers: list[tuple[int, list[Request]]]  # (environment, its requests in order)
    skews: list[float]
    profile: AicProfile
    seeded_token_left: float | None  # a token stored before the history, with this many seconds left
    ddb_faults: float
    crash_rate: float
    stall_rate: float
    start_gaps: list[float] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"seed {self.seed}: {self.envs} environments, {len(self.callers)} callers, skews "
            f"{[round(s, 2) for s in self.skews]}, AIC {self.profile}, seeded token "
            f"{self.seeded_token_left}, DynamoDB faults {self.ddb_faults}, crashes {self.crash_rate}, "
            f"stalls {self.stall_rate}"
        )


def draw_scenario(seed: int, *, small: bool = False) -> Scenario:
    rng = random.Random(seed)
    envs = 2 if small else rng.randint(2, 4)
    callers: list[tuple[int, list[Request]]] = []
    for env in range(envs):
        for _ in range(1 if small else rng.randint(1, 3)):
            requests = []
            for index in range(1 if small else rng.randint(1, 3)):
                requests.append(
                    Request(
                        scope=SCOPE_SETS[0] if small else rng.choice(SCOPE_SETS),
                        min_validity=None if small else rng.choice([None, None, 600]),
                        report=(not small) and index > 0 and rng.random() < 0.25,
                        deadline=rng.choice([3.0, 10.0, 30.0]) if not small else 10.0,
                    )
                )
            callers.append((env, requests))
    lifetime = 899 if small else rng.choice([899, 899, 899, 100])
    profile = AicProfile(
        latency=0.2 if small else rng.choice([0.05, 0.3, 2.0, 7.0]),
        fail_rate=0.0 if small else rng.choice([0.0, 0.0, 0.3, 0.7]),
        invalid_scope=(not small) and rng.random() < 0.08,
        lifetime=lifetime,
        down=(not small) and rng.random() < 0.1,
    )
    seeded = 200.0 if small else rng.choice([None, None, 200.0, 700.0, 30.0])
    if seeded is not None:
        seeded = min(seeded, lifetime - 10.0)  # a stored token never has more left than AIC issues
    return Scenario(
        seed=seed,
        envs=envs,
        callers=callers,
        skews=[0.0 if small else rng.uniform(-2, 2) for _ in range(envs)],
        profile=profile,
        seeded_token_left=seeded,
        ddb_faults=0.0 if small else rng.choice([0.0, 0.0, 0.05]),
        crash_rate=0.0 if small else rng.choice([0.0, 0.0, 0.01]),
        stall_rate=0.0 if small else rng.choice([0.0, 0.02]),
        start_gaps=[0.0 if small else rng.choice([0.0, 0.0, 1.0, 12.0]) for _ in callers],
    )


@dataclass
class History:
    scenario: Scenario
    outcomes: list[Outcome]
    observed: Observations
    log: list[str]
    steps: int
    crashes: int
    violations: list[str]


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
    ddb = SimDynamoDB(
        scheduler, observed, random.Random(rng.random()), fault_rate=scenario.ddb_faults, weaken=weaken
    )
    # A seeded token is stored in plain text (as an unencrypted deployment stores it), so those histories
    # run unencrypted; the others alternate, so the envelope's KMS calls are scheduled too.
    encrypted = scenario.seeded_token_left is None and scenario.seed % 2 == 0
    if scenario.seeded_token_left is not None:
        for scope in SCOPE_SETS:
            _seed_token(ddb, observed, scope, scenario.seeded_token_left, scenario.profile.lifetime)
    holder_rng = random.Random(rng.random())
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
        envelope = (
            Envelope(
                "alias/sim",
                SimKMS(scheduler, random.Random(rng.random())),
                clock=wall,
                context={"purpose": "token-cache"},
            )  # type: ignore[arg-type]
            if encrypted
            else None
        )
        if envelope is not None:
            envelope._lock = CoopLock(scheduler)  # type: ignore[assignment]
        jti_rng = random.Random(rng.random())
        vendors.append(
            TokenVendor(
                settings,
                key_source=SimKeys(),  # type: ignore[arg-type]
                endpoint=SimEndpoint(scheduler, observed, scenario.profile, rng, wall),
                table=TokenTable(TABLE, ddb, clock=wall, envelope=envelope),  # type: ignore[arg-type]
                memory=MemoryCache(),
                clocks=Clocks(wall=wall, sleep=scheduler.sleep, signing=time.time),
                lease_seconds=LEASE_SECONDS,
                new_jti=lambda jti_rng=jti_rng: f"jti-{jti_rng.getrandbits(64):016x}",
            )
        )
    for vendor in vendors:
        vendor._locks = KeyLocks(lambda: CoopLock(scheduler))
    outcomes: list[Outcome] = []

    def caller(index: int, env: int, requests: list[Request]) -> Callable[[], None]:
        def run() -> None:
            gap = scenario.start_gaps[index] if index < len(scenario.start_gaps) else 0.0
            if gap:
                scheduler.sleep(gap)
            last: CachedToken | None = None
            me = scheduler.current()
            for request in requests:
                stalled_before = me.stalled
                outcome = Outcome(f"caller{index}", env, request, scheduler.now)
                outcomes.append(outcome)
                rejected = fingerprint(last.access_token) if request.report and last is not None else None
                outcome.reported = rejected
                vend = VendRequest(
                    normalise_scopes(request.scope), request.min_validity, DIRECT_CALLER, rejected
                )
                deadline = Deadline.after(request.deadline, lambda: scheduler.now)
                try:
                    result = vendors[env].vend(vend, deadline)
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

        return run

    if scenario.seed % 3 == 0:  # issue 25: the scheduled refresh runs in env0 as an actor of its own
        scheduler.spawn(Actor("env0/schedule", 0, _schedule(scheduler, vendors[0], scenario)))
    # Lease holder values from the seed, in every room that draws them.
    original_secrets = fleet_lease.secrets
    fleet_lease.secrets = retirement.secrets = _SeededSecrets(holder_rng)  # type: ignore[assignment]
    try:
        for index, (env, requests) in enumerate(scenario.callers):
            scheduler.spawn(Actor(f"env{env}/caller{index}", env, caller(index, env, requests)))
        try:
            scheduler.run()
        except Hang as exc:
            observed.violations.append(f"invariant 4: the history hung ({exc})")
            scheduler.abandon()
    finally:
        fleet_lease.secrets = retirement.secrets = original_secrets  # type: ignore[assignment]
    violations = list(observed.violations) + check(
        scenario, outcomes, observed, ddb, crashes[0], scheduler.now
    )
    return History(scenario, outcomes, observed, scheduler.log, scheduler.steps, crashes[0], violations)


def _schedule(scheduler: Scheduler, vendor: TokenVendor, scenario: Scenario) -> Callable[[], None]:
    """EventBridge Scheduler's runs: one soon, then every minute, each with its own 30 s deadline."""
    from token_vendor.scheduled_refresh import ScheduledRefresher

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
        for _ in range(3):
            # A failed run is the next run's business; the invariants judge what callers got.
            with contextlib.suppress(TokenVendorError):
                refresher.run(Deadline.after(30.0, lambda: scheduler.now))
            scheduler.sleep(60.0)

    return run


class _SeededSecrets:
    """Lease holder values from the history's seed, so histories replay byte for byte."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def token_hex(self, nbytes: int = 16) -> str:
        return f"{self._rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def check(
    scenario: Scenario,
    outcomes: list[Outcome],
    observed: Observations,
    ddb: SimDynamoDB,
    crashes: int,
    ended: float = 0.0,
) -> list[str]:
    violations: list[str] = []
    reports = sum(1 for o in outcomes if o.reported)
    for outcome in outcomes:
        request = outcome.request
        need = max(120, request.min_validity or 0)
        if outcome.error is not None:
            if outcome.error != "crashed" and outcome.error not in STABLE_NAMES:
                violations.append(f"invariant 4: {outcome.caller} got {outcome.error}")
        elif outcome.token is not None:
            token = outcome.token
            left = token.expires_at - (outcome.ended + scenario.skews[outcome.env])
            if left < need - 1e-6:
                violations.append(f"invariant 2: {outcome.caller} got {left:.1f}s of validity, asked {need}")
            issued = observed.issued.get(token.access_token)
            if issued is None or issued[0] != request.scope or token.scope != request.scope:
                violations.append(f"invariant 2: {outcome.caller} got a token of another scope set")
            retired = outcome.reported and not outcome.rate_limited
            if retired and fingerprint(token.access_token) == outcome.reported:
                violations.append(f"invariant 2: {outcome.caller} got back the token it reported")
        else:
            violations.append(f"invariant 4: {outcome.caller} ended with neither a token nor an error")
        allowed = request.deadline + 0.6 + outcome.stalled  # a stalled process misses any deadline
        if outcome.error != "crashed" and outcome.ended > outcome.started + allowed:
            violations.append(
                f"invariant 4: {outcome.caller} ended {outcome.ended - outcome.started:.2f}s after it began, "
                f"its deadline was {request.deadline}s"
            )
    # Invariant 1: one exchange per scope set per refresh cycle, one more per lapse (and per report that
    # retires a token, per crash that lost a stored token's write, per unshared mint under table faults).
    for scope, count in observed.exchanges.items():
        # The history lasts until its last actor ends: a caller, or the scheduled refresh's last run.
        last = max([ended, *(o.ended for o in outcomes)])
        cycles = 1 + int(last // max(1.0, scenario.profile.lifetime / 2 - 1))
        allowance = cycles + observed.lapses + reports + crashes
        if scenario.ddb_faults:
            allowance += sum(1 for o in outcomes if o.request.scope == scope)
        if count > allowance:
            violations.append(
                f"invariant 1: {count} exchanges for {scope!r} (allowed {allowance}: {cycles} cycles, "
                f"{observed.lapses} lapses, {reports} reports, {crashes} crashes)"
            )
    # Invariant 6: AIC down, a cached token with enough validity: everyone served, nothing minted.
    if scenario.profile.down and scenario.seeded_token_left is not None and not scenario.ddb_faults:
        for outcome in outcomes:
            need = max(120, outcome.request.min_validity or 0)
            fits = scenario.seeded_token_left - outcome.ended - abs(scenario.skews[outcome.env]) >= need + 1
            if fits and not outcome.reported and outcome.error not in (None, "crashed"):
                violations.append(
                    f"invariant 6: {outcome.caller} got {outcome.error} with a valid token cached"
                )
    return violations


def history_digest(history: History) -> str:
    """The scheduler's log and what every caller got (issue 24): a replay matches outcome for outcome."""
    outcomes = [
        f"{o.caller} {o.env} {o.started:.6f} {o.ended:.6f} {o.error} "
        f"{fingerprint(o.token.access_token) if o.token else None} {o.rate_limited}"
        for o in history.outcomes
    ]
    return hashlib.sha256("\n".join([*history.log, *outcomes]).encode()).hexdigest()[:16]
