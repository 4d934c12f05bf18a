"""The invariants, judged on what every caller got and on what the referee saw (issue 14, tightened by 24).

1. One exchange per scope set per refresh cycle. Allowances come from facts the simulation has, never
   from the symptoms: one more per lapsed lease whose holder had crashed or stalled, per crash, per report
   that named the stored token (at most one per MIN_REFRESH_INTERVAL_SECONDS per scope set), and under
   DynamoDB faults or brownouts one per request (each may mint without the shared cache).
2. Never less validity than asked, never another scope set, never a reporter's own token back.
3. The lease (judged as it happens, ``referee.py``): one live holder; only it stores a token; it never
   calls AIC past its lease; the table never goes backwards.
4. Every request ends by its deadline (plus ``SLACK``) with a token or a stable error name.
5. A remembered rejection only after a rejection; at most one rejection per scope set per 60 s (plus one
   per crash and per lapse of a crashed or stalled holder; per environment when DynamoDB trouble lets each
   mint on its own).
6. AIC down or flapping, a stored token that meets the need: everyone is served.
7. A failed refresh backs the fleet off (5 s, doubling to 60 s): judged as it happens (``referee.py``).
8. During a retirement, everyone but the reporters keeps being served while the reported token serves.
"""

from __future__ import annotations

from tests.simulation.referee import Referee
from tests.simulation.scenarios import Outcome, Scenario
from tests.simulation.world import Observations
from token_vendor.kernel.cached_token import fingerprint

STABLE_NAMES = {
    "InvalidRequest",
    "InvalidScope",
    "AccessDenied",
    "UpstreamRejected",
    "UpstreamUnavailable",
    "ConfigurationError",
    "InternalError",
}
SLACK = 0.01  # seconds a request may end after its deadline: float rounding, nothing more (issue 24)
MIN_REFRESH_INTERVAL = 30.0  # CONTRACT's default, which the simulation's vendors run with
REJECTION_MEMORY = 60.0


def check(
    scenario: Scenario,
    outcomes: list[Outcome],
    observed: Observations,
    referee: Referee,
    crashes: int,
    ended: float = 0.0,
) -> list[str]:
    violations: list[str] = []
    for outcome in outcomes:
        violations += _each_request(scenario, outcome)
    last = max([ended, *(o.ended for o in outcomes)])
    violations += _exchanges(scenario, outcomes, observed, referee, crashes, last)
    violations += _rejections(scenario, referee, crashes)
    violations += _served_while_a_token_serves(scenario, outcomes)
    violations += _retirements_serve_others(scenario, outcomes, referee, last)
    return violations


def _each_request(scenario: Scenario, outcome: Outcome) -> list[str]:
    """Invariants 2 and 4, for one request."""
    violations = []
    request = outcome.request
    if outcome.error is not None:
        if outcome.error != "crashed" and outcome.error not in STABLE_NAMES:
            violations.append(f"invariant 4: {outcome.caller} got {outcome.error}")
    elif outcome.token is not None:
        token = outcome.token
        left = token.expires_at - (outcome.ended + scenario.skews[outcome.env])
        if left < outcome.need - outcome.stalled - 1e-6:  # a process frozen after choosing ages its token
            violations.append(
                f"invariant 2: {outcome.caller} got {left:.1f}s of validity, asked {outcome.need:.0f}"
            )
        if token.scope != request.scope:
            violations.append(f"invariant 2: {outcome.caller} got a token of another scope set")
        retired = outcome.reported and not outcome.rate_limited
        if retired and fingerprint(token.access_token) == outcome.reported:
            violations.append(f"invariant 2: {outcome.caller} got back the token it reported")
    else:
        violations.append(f"invariant 4: {outcome.caller} ended with neither a token nor an error")
    allowed = request.deadline + SLACK + outcome.stalled  # a stalled process misses any deadline
    if outcome.error != "crashed" and outcome.ended > outcome.started + allowed:
        violations.append(
            f"invariant 4: {outcome.caller} ended {outcome.ended - outcome.started:.2f}s after it began, "
            f"its deadline was {request.deadline}s"
        )
    return violations


def _exchanges(
    scenario: Scenario,
    outcomes: list[Outcome],
    observed: Observations,
    referee: Referee,
    crashes: int,
    last: float,
) -> list[str]:
    violations = []
    for outcome in outcomes:
        if outcome.token is not None:
            issued = observed.issued.get(outcome.token.access_token)
            if issued is None or issued[0] != outcome.request.scope:
                violations.append(
                    f"invariant 2: {outcome.caller} got a token AIC never issued for its scopes"
                )
    windows = 1 + int(last // (MIN_REFRESH_INTERVAL - _skew_span(scenario)))
    for scope, count in observed.exchanges.items():
        cycles = 1 + int(last // max(1.0, scenario.profile.lifetime / 2 - 1))
        named = sum(1 for o in outcomes if o.named_stored and o.request.scope == scope)
        reports = min(named, windows)
        allowance = cycles + referee.lapses_excused + reports + crashes
        if _table_troubled(scenario):
            allowance += sum(1 for o in outcomes if o.request.scope == scope)
        if count > allowance:
            violations.append(
                f"invariant 1: {count} exchanges for {scope!r} (allowed {allowance}: {cycles} cycles, "
                f"{referee.lapses_excused} lapses of crashed or stalled holders, {reports} reports that "
                f"named the stored token, {crashes} crashes)"
            )
    return violations


def _rejections(scenario: Scenario, referee: Referee, crashes: int) -> list[str]:
    """Invariant 5: AIC's rejection is remembered for 60 s, fleet-wide."""
    span = _skew_span(scenario)
    groups: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for attempt in referee.attempts:
        if attempt.result == "rejected":
            group = (attempt.scope, attempt.env if _table_troubled(scenario) else 0)
            groups.setdefault(group, []).append((attempt.started, attempt.ended))
    violations = []
    for (scope, _), answers in groups.items():
        extra = 0
        remembered_until = float("-inf")
        for started, answered in sorted(answers):
            if started < remembered_until:
                extra += 1
            else:
                remembered_until = answered + REJECTION_MEMORY - span
        excused = crashes + referee.lapses_excused  # a holder that died or froze before remembering it
        if extra > excused:
            violations.append(
                f"invariant 5: AIC rejected {scope!r} {len(answers)} times, {extra} of them within "
                f"{REJECTION_MEMORY:.0f}s of a rejection the fleet remembered ({crashes} crashes, "
                f"{referee.lapses_excused} lapses of crashed or stalled holders)"
            )
    return violations


def _served_while_a_token_serves(scenario: Scenario, outcomes: list[Outcome]) -> list[str]:
    """Invariant 6: AIC down (or flapping), a stored token with enough validity: everyone served."""
    profile = scenario.profile
    failing = profile.down or profile.flap_until > 0
    if not failing or scenario.seeded_token_left is None or _table_troubled(scenario):
        return []
    violations = []
    for outcome in outcomes:
        left = scenario.seeded_token_left - outcome.ended - abs(scenario.skews[outcome.env])
        if left >= outcome.need + 1 and not outcome.reported and outcome.error not in (None, "crashed"):
            violations.append(f"invariant 6: {outcome.caller} got {outcome.error} with a valid token cached")
    return violations


def _retirements_serve_others(
    scenario: Scenario, outcomes: list[Outcome], referee: Referee, last: float
) -> list[str]:
    """Invariant 8: make before break. While a reported token is being replaced, every other caller of
    that scope set whose need it meets is served (the reported token, or its replacement)."""
    violations = []
    span = _skew_span(scenario)
    for window in referee.retirements:
        end = window.ended if window.ended is not None else last
        for outcome in outcomes:
            if outcome.request.scope != window.scope or outcome.reported == window.old_fingerprint:
                continue
            if not window.started <= outcome.started < end or outcome.error in (None, "crashed"):
                continue
            if _table_troubled(scenario) or outcome.stalled:
                continue
            left = window.old_expires_at - (outcome.ended + scenario.skews[outcome.env])
            if left >= outcome.need + span:
                violations.append(
                    f"invariant 8: {outcome.caller} got {outcome.error} while {window.reporter}'s report was "
                    f"being replaced and the reported token still served ({left:.0f}s left)"
                )
    return violations


def _skew_span(scenario: Scenario) -> float:
    return max(scenario.skews) - min(scenario.skews) if scenario.skews else 0.0


def _table_troubled(scenario: Scenario) -> bool:
    """DynamoDB throttles or browns out: any request may mint without the shared cache (CONTRACT 8)."""
    return bool(scenario.ddb_faults or scenario.aws_latency)
