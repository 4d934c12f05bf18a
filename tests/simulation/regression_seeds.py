"""The seeds that once found a bug, each with its story and the rule that fixed it.

``make simulate`` and ``make test`` replay every one first (``test_simulation.py`` runs each as its own
test, named by its seed and what it found). The vendor's code states the rule; the story of how the rule
was found lives here, beside the history that pins it, and in ``docs/decisions.md`` ("Simulation").

``owner`` names where the rule is kept (``module:Class.method`` under ``token_vendor``); a test checks it
still exists, so a rename cannot leave a story pointing nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Found:
    seed: int
    owner: str  # where the rule that fixed it lives
    story: str  # what the history did before the fix
    keyless: bool = False  # found in a history that signs with kms:Sign (issue 35)


# Issue 14: plain histories (no flavour), found before the referee.
PLAIN: tuple[Found, ...] = (
    Found(
        549,
        "vend.vending:SlowPath.serve",
        "a container's own remembered rejection was answered without reading the table, so a token the "
        "fleet had stored, and that served the request, was not served",
    ),
    Found(
        551,
        "vend.vending:TokenVendor._after_lock_timeout",
        "a request waiting for another request's slow path in the same container (that one needing more "
        "validity than was cached, from an AIC that was down) waited past its deadline",
    ),
    Found(
        1518,
        "adapters.aws.envelope:Envelope",
        "the envelope held its lock during kms:GenerateDataKey: one slow KMS call held every thread",
    ),
    Found(
        378,
        "vend.vending:TokenVendor._after_lock_timeout",
        "the lock-timeout fallback served a reporter the very token it reported",
    ),
    Found(
        1903,
        "vend.fleet_lease:FleetLease._as_lease_winner",
        "a lease winner that had not seen the stored token minted again for a need AIC's short-lived "
        "tokens cannot meet",
    ),
    Found(
        7525,
        "vend.vending:TokenVendor._vend_once",
        "a lock waiter gave up with 0.01 s left, too late to read the fleet's token",
    ),
)

# Issue 24: the referee's invariants.
REFEREE: tuple[Found, ...] = (
    Found(
        37,
        "adapters.aws.item_format:LEASE_FREE",
        "a holder behind by 2 s was taken over mid-exchange by a clock 1 s ahead",
    ),
    Found(
        48,
        "vend.fleet_lease:FleetLease.renewal",
        "a slow lease grant (a DynamoDB brownout) let the holder work past its lease",
    ),
    Found(
        13,
        "vend.retirement:Retirement._answer_without_retiring",
        "every report of a refused scope set asked AIC again",
    ),
    Found(
        508,
        "adapters.aws.table_item:ItemCodec.entry",
        "a retirement written by a clock ahead of ours was read as planted, and the rate limit ignored",
    ),
    Found(
        290,
        "vend.fleet_lease:FleetLease._as_lease_winner",
        "a lease winner that had read nothing re-minted a 300 s token stored a moment ago",
    ),
    Found(
        4125,
        "vend.fleet_lease:FleetLease._mint_as_holder",
        "a holder minted to its lease's last moment and could not store the token",
    ),
)

# Issue 30: soaks from random starts.
SOAKS: tuple[Found, ...] = (
    Found(
        745592285,
        "vend.vending:TokenVendor._vend",
        "recording a use took a retried write after the token was chosen: 599.9 s served for 600 asked",
    ),
    Found(281993656, "vend.vending:TokenVendor._vend", "the same, in another history"),
    Found(
        826317362,
        "vend.vending:SlowPath.serve",
        "a process that stalled woke with 0.08 s left, could not read the table in time and minted beside "
        "the fleet's stored token",
    ),
    Found(
        826300020,
        "vend.retirement:Retirement._answer_without_retiring",
        "a report named a token a stalled holder stored during the request",
    ),
    Found(826294604, "vend.retirement:Retirement._answer_without_retiring", "the same, in another history"),
    Found(
        787467108,
        "vend.fleet_lease:FleetLease.lease_or_wait",
        "another random start that made two exchanges for one need, and passes after the fixes above",
    ),
    Found(
        664331175,
        "vend.fleet_lease:FleetLease.mint_unshared",
        "a waiter frozen mid-poll woke with 0.05 s left; its lease attempt was never sent and it minted "
        "beside the holder",
    ),
    Found(
        664350822,
        "vend.fleet_lease:FleetLease.mint_unshared",
        "a report during a DynamoDB fault asked AIC again although its own environment remembered AIC's "
        "rejection of the scope set",
    ),
)

# Issue 35 and after: histories that sign with kms:Sign.
KEYLESS: tuple[Found, ...] = (
    Found(
        20574,
        "adapters.aws.kms_signer:KmsSigner._resolve",
        "a thread that stalled while resolving the signing key's alias held the signer's lock, and "
        "another request of that container waited on it 7 s past its deadline",
        keyless=True,
    ),
    Found(
        687842084,
        "adapters.aic.token_endpoint:TokenEndpoint.exchange",
        "a holder's kms:Sign used the rest of its lease and the exchange was sent 0.15 s after the lease "
        "ended",
        keyless=True,
    ),
    Found(
        687841730,
        "vend.fleet_lease:FleetLease.renewal",
        "a retirement's replacement mint retried without renewing its lease; its third attempt reached "
        "AIC after another holder had taken the lease over",
        keyless=True,
    ),
)

FOUND: tuple[Found, ...] = (*PLAIN, *REFEREE, *SOAKS, *KEYLESS)
PLAIN_SEEDS: tuple[int, ...] = tuple(found.seed for found in PLAIN)
KEYLESS_SEEDS: tuple[int, ...] = tuple(found.seed for found in FOUND if found.keyless)
REGRESSION_SEEDS: tuple[int, ...] = tuple(found.seed for found in FOUND)
