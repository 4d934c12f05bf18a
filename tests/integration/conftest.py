"""Vendors built directly against the local stack, with injectable clocks and sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from local.stack import TENANT, LocalStack
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws.envelope import Envelope
from token_vendor.adapters.aws.key_source import KeySource
from token_vendor.kernel.cached_token import CachedToken
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.settings import load_settings
from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest
from token_vendor.vend.memory_cache import MemoryCache
from token_vendor.vend.vending import Clocks, TokenVendor
from token_vendor.wiring import compose_vendor


class Recorder:
    """Collects metrics the vendor emits, by name."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


class FakeWall:
    """A wall clock the test moves; starts at the real time so the stand-in's checks still pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def make_vendor(fresh_stack: LocalStack) -> Callable[..., TokenVendor]:
    def build(
        *,
        encrypt: bool = True,
        wall: Callable[[], float] = time.time,
        sleeps: list[float] | None = None,
        metrics: Recorder | None = None,
        dynamodb: Any = None,
        kms: Any = None,
        secretsmanager: Any = None,
        endpoint: TokenEndpoint | None = None,
        lease_seconds: float = 10.0,
        key_clock: Callable[[], float] = time.monotonic,
        **env: str,
    ) -> TokenVendor:
        settings = load_settings(
            fresh_stack.function_env(**({} if encrypt else {"TOKEN_CACHE_KEY_ID": ""}), **env)
        )

        def sleep(seconds: float) -> None:
            if sleeps is None:
                time.sleep(seconds)
            else:
                sleeps.append(seconds)

        envelope = (
            Envelope(
                settings.cache_key_id,
                kms or fresh_stack.client("kms"),
                clock=wall,
                context={"purpose": "token-cache", "table": settings.table_name},
            )
            if settings.cache_key_id
            else None
        )
        return compose_vendor(
            settings,
            key_source=KeySource(
                settings.secret_id,
                secretsmanager or fresh_stack.client("secretsmanager"),
                clock=key_clock,
            ),
            endpoint=endpoint or TokenEndpoint(settings.token_endpoint_url, sleep=sleep),
            dynamodb=dynamodb or fresh_stack.client("dynamodb"),
            envelope=envelope,
            memory=MemoryCache(),
            metrics=metrics,
            clocks=Clocks(wall=wall, sleep=sleep),
            lease_seconds=lease_seconds,
        )

    return build


@dataclass
class RefreshFleet:
    """Containers sharing one token that has just entered the refresh-ahead window."""

    containers: list[TokenVendor]
    token: CachedToken
    wall: FakeWall
    metrics: Recorder


def fleet_in_refresh_window(make_vendor: Any, stack: LocalStack, fault: Any, size: int = 5) -> RefreshFleet:
    """``size`` containers, one token minted and shared, then AIC starts answering ``fault`` and the clock
    moves to 200 s before expiry: inside the refresh-ahead window (300 s), above the 120 s a caller needs."""
    wall = FakeWall()
    metrics = Recorder()
    containers = [make_vendor(wall=wall, sleeps=[], metrics=metrics) for _ in range(size)]
    token = containers[0].vend(direct("fr:idm:*"), budget()).token
    stack.standin.reset_counters()
    stack.standin.set_sticky_fault(fault)
    wall.advance(899 - 200)
    return RefreshFleet(containers, token, wall, metrics)


def direct(scope: str, min_validity: int | None = None) -> VendRequest:
    from token_vendor.kernel.scopes import normalise_scopes

    return VendRequest(normalise_scopes(scope), min_validity, DIRECT_CALLER)


def budget(seconds: float = 10.0) -> Deadline:
    return Deadline.after(seconds, time.monotonic)


__all__ = ["TENANT", "FakeWall", "Recorder", "budget", "direct"]
