"""Issue 2: retries on 5xx, 429 and timeouts (each with a fresh assertion), never on a 400."""

from __future__ import annotations

import random
import time
from typing import Any

import jwt
import pytest

from local.aic_standin import Fault
from local.stack import LocalStack
from tests.integration.conftest import Recorder, budget, direct
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import UpstreamRejected, UpstreamUnavailable

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_a_transient_status_is_retried_and_then_succeeds(
    make_vendor: Any, fresh_stack: LocalStack, status: int
) -> None:
    fresh_stack.standin.push_faults(Fault("status", status=status))
    sleeps: list[float] = []

    vended = make_vendor(sleeps=sleeps).vend(direct("fr:idm:*"), budget())

    assert vended.tier == "minted"
    assert fresh_stack.standin.token_requests == 2
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.2  # first backoff: full jitter under the 0.2 s base


def test_three_failures_give_upstream_unavailable(make_vendor: Any, fresh_stack: LocalStack) -> None:
    fresh_stack.standin.set_sticky_fault(Fault("status", status=503))
    sleeps: list[float] = []

    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        make_vendor(sleeps=sleeps).vend(direct("fr:idm:*"), budget())

    assert fresh_stack.standin.token_requests == 3
    assert len(sleeps) == 2
    assert sleeps[1] <= 0.4  # exponential: the cap of the second backoff doubles


def test_retry_after_is_honoured(make_vendor: Any, fresh_stack: LocalStack) -> None:
    fresh_stack.standin.push_faults(Fault("status", status=429, retry_after="2"))
    sleeps: list[float] = []

    make_vendor(sleeps=sleeps).vend(direct("fr:idm:*"), budget())

    assert sleeps == [2.0]


def test_retry_after_beyond_the_remaining_time_stops_at_once(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    fresh_stack.standin.set_sticky_fault(Fault("status", status=429, retry_after="30"))
    sleeps: list[float] = []

    with pytest.raises(UpstreamUnavailable) as caught:
        make_vendor(sleeps=sleeps).vend(direct("fr:idm:*"), budget(5))

    assert sleeps == []
    assert fresh_stack.standin.token_requests == 1
    assert caught.value.retry_after == 30


@pytest.mark.parametrize(("status", "counted"), [(502, 1), (504, 1), (500, 0), (503, 0), (429, 0)])
def test_a_gateway_error_is_counted_as_a_retry_after_send(
    fresh_stack: LocalStack, status: int, counted: int
) -> None:
    # A gateway's 502/504 answers after the request left: AIC may have minted a token nobody gets.
    fresh_stack.standin.push_faults(Fault("status", status=status))
    metrics = Recorder()
    endpoint = TokenEndpoint(fresh_stack.standin.token_url, sleep=lambda s: None, metrics=metrics)

    issued = endpoint.exchange(
        lambda: _assertion(fresh_stack), ("fr:idm:*",), Deadline.after(5, time.monotonic)
    )

    assert issued.attempts == 2
    assert metrics.counts.get("ExchangeRetriedAfterSend", 0) == counted


def test_a_timeout_is_retried(make_vendor: Any, fresh_stack: LocalStack) -> None:
    fresh_stack.standin.push_faults(Fault("slow", delay=1.0))
    endpoint = TokenEndpoint(fresh_stack.standin.token_url, read_timeout=0.3, sleep=lambda s: None)

    vended = make_vendor(endpoint=endpoint).vend(direct("fr:idm:*"), budget())

    assert vended.tier == "minted"
    assert fresh_stack.standin.token_requests == 2


def test_a_dropped_connection_is_retried(make_vendor: Any, fresh_stack: LocalStack) -> None:
    fresh_stack.standin.push_faults(Fault("drop"))

    vended = make_vendor(sleeps=[]).vend(direct("fr:idm:*"), budget())

    assert vended.tier == "minted"
    assert fresh_stack.standin.token_requests == 2


def test_a_400_is_not_retried(make_vendor: Any, fresh_stack: LocalStack) -> None:
    fresh_stack.standin.push_faults(
        Fault("status", status=400, body=b'{"error":"invalid_request","error_description":"bad"}')
    )
    sleeps: list[float] = []

    with pytest.raises(UpstreamRejected) as caught:
        make_vendor(sleeps=sleeps).vend(direct("fr:idm:*"), budget())

    assert caught.value.upstream_code == "invalid_request"
    assert fresh_stack.standin.token_requests == 1
    assert sleeps == []


def test_every_attempt_signs_a_fresh_assertion(make_vendor: Any, fresh_stack: LocalStack) -> None:
    fresh_stack.standin.push_faults(Fault("status", status=500), Fault("status", status=500))
    before = len(fresh_stack.standin.assertions_seen())

    make_vendor(sleeps=[]).vend(direct("fr:idm:*"), budget())

    sent = fresh_stack.standin.assertions_seen()[before:]
    jtis = {jwt.decode(a, options={"verify_signature": False})["jti"] for a in sent}
    assert len(sent) == 3
    assert len(jtis) == 3


def test_no_attempt_or_wait_goes_past_the_deadline(fresh_stack: LocalStack) -> None:
    fresh_stack.standin.set_sticky_fault(Fault("status", status=500))
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    endpoint = TokenEndpoint(fresh_stack.standin.token_url, sleep=sleep, rng=random.Random(7))
    deadline = Deadline(0.25, lambda: now[0])  # an invocation with 250 ms left

    with pytest.raises(UpstreamUnavailable):
        endpoint.exchange(lambda: _assertion(fresh_stack), ("fr:idm:*",), deadline)

    assert sum(slept) < 0.25
    assert fresh_stack.standin.token_requests == len(slept) + 1 <= 3


def _assertion(stack: LocalStack) -> Any:
    from token_vendor.adapters.aic.assertion import sign_assertion

    return sign_assertion(
        stack.key,
        stack.account_id,
        stack.standin.token_url,
        now=time.time(),
        new_jti=lambda: str(__import__("uuid").uuid4()),
    )
