"""A stored lifetime is believed only inside its sanity bound (issue 33, item 6).

An unencrypted item's ``lifetime`` is not authenticated: the vendor keeps it only while a token could have
lived that long (at least what it has left, less the clock difference allowed, and at most the longest
``expires_in`` AIC may answer). Outside the bound it is read as unknown (0), never as a short life that
would refuse callers or a long one. The boundaries are pinned exactly, so a weakened bound fails here.
"""

from __future__ import annotations

import pytest

from token_vendor.adapters.aws.table_item import MAX_CLOCK_SKEW, MAX_TOKEN_LIFETIME, ItemCodec

NOW = 1_000_000.0
LEFT = 700.0  # the stored token's seconds left


def _lifetime(stored: float) -> float:
    codec = ItemCodec(lambda: NOW, None, lambda reason: None)
    item = {
        "token": {"S": "plain-token"},
        "expires_at": {"N": repr(NOW + LEFT)},
        "scope": {"S": "fr:idm:*"},
        "lifetime": {"N": repr(stored)},
    }
    token = codec.token("key", item, NOW + LEFT, NOW)
    assert token is not None
    return token.lifetime


@pytest.mark.parametrize(
    ("stored", "kept"),
    [
        (LEFT - MAX_CLOCK_SKEW, True),  # the lower edge: as much as it has left, less the clocks' difference
        (LEFT - MAX_CLOCK_SKEW - 0.01, False),  # less than that: it would claim less life than it has left
        (1.0, False),
        (900.0, True),
        (MAX_TOKEN_LIFETIME, True),  # the upper edge: the longest expires_in the vendor accepts
        (MAX_TOKEN_LIFETIME + 0.01, False),
        (1e12, False),
    ],
)
def test_a_stored_lifetime_is_kept_only_inside_its_bound(stored: float, kept: bool) -> None:
    assert _lifetime(stored) == (stored if kept else 0.0)


def test_the_bounds_are_the_contracts_figures() -> None:
    """The figures the bound is made of: clocks a minute apart at most, an expires_in of a day at most."""
    assert MAX_CLOCK_SKEW == 60.0
    assert MAX_TOKEN_LIFETIME == 86_400.0
