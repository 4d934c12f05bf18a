"""The scenarios: what a seed draws (environments, callers, AIC's behaviour, faults) and its flavour.

Half the seeds are plain histories as drawn since issue 14. The other half add a flavour (issue 24), drawn
from the seed by a generator of its own so a plain history stays what it was:

- ``flap``: AIC fails every exchange for 2-3 minutes while a stored token still serves;
- ``boundary``: callers ask for 600 s and the stored token has 600 s, give or take 3;
- ``brownout``: every DynamoDB and KMS call takes 0.1-2 s;
- ``reports``: most repeated requests report the token they got (retirement storms);
- ``cycles``: tokens live 300 s and callers come back for minutes (several refresh cycles);
- ``refused``: AIC refuses the scope set, and callers of every environment ask for it at once;
- ``stalls``: processes freeze often (5-20 s, past the lease) while others keep asking.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.simulation.signing import draws_keyless
from token_vendor.kernel.cached_token import CachedToken

SCOPE_SETS = ("fr:idm:*", "fr:am:* fr:idm:*")
FLAVOURS = ("plain",) * 6 + ("flap", "boundary", "brownout", "reports", "cycles", "refused", "stalls")


@dataclass
class AicProfile:
    latency: float  # seconds per exchange
    fail_rate: float  # 5xx / 429 / timeouts
    invalid_scope: bool  # the account lacks the scope sets
    lifetime: int  # expires_in of issued tokens
    down: bool  # every exchange fails
    flap_until: float = 0.0  # every exchange fails before this time (the flap scenario)


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
    named_stored: bool = False  # the report named the token stored when the request began

    @property
    def need(self) -> float:
        return float(max(120, self.request.min_validity or 0))


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
    flavour: str = "plain"
    think: tuple[float, float] = (0.0, 0.0)  # seconds a caller waits between its requests
    aws_latency: tuple[float, float] | None = None  # seconds per DynamoDB and KMS call (brownout)
    keyless: bool = False  # issue 35: the vendor signs with kms:Sign (signing.py), holding no private key

    def describe(self) -> str:
        return (
            f"seed {self.seed} ({self.flavour}): {self.envs} environments, {len(self.callers)} callers, "
            f"skews "
            f"{[round(s, 2) for s in self.skews]}, AIC {self.profile}, seeded token "
            f"{self.seeded_token_left}, DynamoDB faults {self.ddb_faults}, crashes {self.crash_rate}, "
            f"stalls {self.stall_rate}, think {self.think}, AWS latency {self.aws_latency}"
            f"{', keyless (kms:Sign)' if self.keyless else ''}"
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
    scenario = Scenario(
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
    if not small:
        flavour = FLAVOURS[random.Random(seed * 800 + 11).randrange(len(FLAVOURS))]
        _FLAVOURED[flavour](scenario, random.Random(seed * 7331 + 17))
        scenario.flavour = flavour
        scenario.keyless = draws_keyless(seed)
    return scenario


def _requests(scenario: Scenario, rng: random.Random, count: tuple[int, int], report: float) -> None:
    """Give every caller a new run of requests (its environment and start gap stay)."""
    for index, (env, old) in enumerate(scenario.callers):
        requests = [
            Request(
                scope=old[0].scope if old else SCOPE_SETS[0],
                min_validity=rng.choice([None, None, 600]),
                report=n > 0 and rng.random() < report,
                deadline=rng.choice([3.0, 10.0, 30.0]),
            )
            for n in range(rng.randint(*count))
        ]
        scenario.callers[index] = (env, requests)


def _flap(scenario: Scenario, rng: random.Random) -> None:
    """AIC fails every exchange for 2-3 minutes; the stored token serves until after AIC is back."""
    profile = scenario.profile
    profile.flap_until = rng.uniform(120.0, 160.0)
    profile.down = profile.invalid_scope = False
    profile.fail_rate = 0.0
    profile.lifetime = 899
    scenario.seeded_token_left = profile.flap_until + 130.0  # due for a refresh all along, still serving
    scenario.ddb_faults = 0.0
    scenario.think = (5.0, 25.0)
    _requests(scenario, rng, (4, 8), 0.1)
    for _, requests in scenario.callers:
        for request in requests:
            request.min_validity = None


def _boundary(scenario: Scenario, rng: random.Random) -> None:
    """Callers ask for 600 s and the stored token has 600 s, give or take 3: every tier at its edge."""
    scenario.profile.lifetime = 899
    scenario.profile.invalid_scope = scenario.profile.down = False
    scenario.seeded_token_left = 600.0 + rng.uniform(-3.0, 3.0)
    scenario.think = (0.2, 1.5)
    _requests(scenario, rng, (2, 4), 0.0)
    for _, requests in scenario.callers:
        for request in requests:
            request.min_validity = 600


def _brownout(scenario: Scenario, rng: random.Random) -> None:
    scenario.aws_latency = (0.1, 2.0)
    scenario.seeded_token_left = None  # half of these run encrypted: KMS is slow too


def _reports(scenario: Scenario, rng: random.Random) -> None:
    scenario.profile.invalid_scope = False
    scenario.think = (0.0, 2.0)
    _requests(scenario, rng, (2, 4), 0.8)


def _cycles(scenario: Scenario, rng: random.Random) -> None:
    scenario.profile.lifetime = 300
    scenario.profile.invalid_scope = scenario.profile.down = False
    scenario.seeded_token_left = None
    scenario.think = (10.0, 40.0)
    _requests(scenario, rng, (3, 6), 0.1)


def _refused(scenario: Scenario, rng: random.Random) -> None:
    scenario.profile.invalid_scope = True
    scenario.profile.latency = rng.choice([0.3, 2.0])
    scenario.think = (0.0, 1.0)
    _requests(scenario, rng, (2, 4), 0.1)
    for index, (_, requests) in enumerate(scenario.callers):
        scenario.start_gaps[index] = 0.0
        for request in requests:
            request.scope = SCOPE_SETS[0]


def _stalls(scenario: Scenario, rng: random.Random) -> None:
    scenario.stall_rate = 0.1
    scenario.crash_rate = 0.0
    scenario.think = (1.0, 8.0)
    _requests(scenario, rng, (3, 6), 0.1)


_FLAVOURED = {
    "plain": lambda scenario, rng: None,
    "flap": _flap,
    "boundary": _boundary,
    "brownout": _brownout,
    "reports": _reports,
    "cycles": _cycles,
    "refused": _refused,
    "stalls": _stalls,
}
