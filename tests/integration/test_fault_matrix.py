"""Issue 6: the fault matrix. For each fault: the stable error or the degraded success the contract
promises, nothing in the cache that should not be there, and a healthy vendor for the next request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from local.aic_standin import Fault
from local.stack import TENANT, LocalStack
from tests.integration.conftest import FakeWall, Recorder, budget, direct
from tests.leak_canary import FIGURES
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.kernel.errors import ConfigurationError, UpstreamUnavailable

pytestmark = pytest.mark.integration


class AwsFaults:
    """Makes chosen operations of a real (moto-backed) client fail, a given number of times."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.remaining: dict[str, list[Exception | None]] = {}
        client.meta.events.register("before-call.*.*", self._maybe_fail)

    def fail(self, operation: str, error: Exception, times: int = 1000, skip: int = 0) -> None:
        """Fail ``operation`` ``times`` times, after letting ``skip`` calls through."""
        self.remaining[operation] = [error] * times + [None] * skip  # popped from the end

    def clear(self) -> None:
        self.remaining.clear()

    def _maybe_fail(self, model: Any, **_: Any) -> None:
        queue = self.remaining.get(model.name)
        if queue:
            error = queue.pop()
            if error is not None:
                raise error


def client_error(code: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    stack: LocalStack
    wall: FakeWall
    metrics: Recorder
    dynamodb: AwsFaults
    kms: AwsFaults
    secrets: AwsFaults
    make: Callable[..., Any]

    def vendor(self, **kwargs: Any) -> Any:
        return self.make(
            wall=self.wall,
            metrics=self.metrics,
            sleeps=[],
            dynamodb=self.dynamodb.client,
            kms=self.kms.client,
            secretsmanager=self.secrets.client,
            **kwargs,
        )

    def item(self, scope: str = "fr:idm:*") -> dict[str, Any]:
        key = cache_key(TENANT, self.stack.secret_id, (scope,))
        got = self.stack.client("dynamodb").get_item(TableName=self.stack.table_name, Key={"pk": {"S": key}})
        return dict(got.get("Item", {}))

    def heal(self) -> None:
        self.stack.standin.reset_counters()
        for faults in (self.dynamodb, self.kms, self.secrets):
            faults.clear()


@pytest.fixture
def world(fresh_stack: LocalStack, make_vendor: Any) -> World:
    return World(
        fresh_stack,
        FakeWall(),
        Recorder(),
        AwsFaults(fresh_stack.client("dynamodb")),
        AwsFaults(fresh_stack.client("kms")),
        AwsFaults(fresh_stack.client("secretsmanager")),
        make_vendor,
    )


def aic(fault: Fault, sticky: bool = True) -> Callable[[World], None]:
    def apply(w: World) -> None:
        if sticky:
            w.stack.standin.set_sticky_fault(fault)
        else:
            w.stack.standin.push_faults(fault)

    return apply


def aws(which: str, operation: str, error: Exception) -> Callable[[World], None]:
    def apply(w: World) -> None:
        getattr(w, which).fail(operation, error)

    return apply


def body(text: bytes) -> Fault:
    return Fault("token_body", body=text)


# name, fault, expected outcome on a cold cache: an error class, or "ok" (served, degraded or recovered)
COLD = [
    ("aic-500", aic(Fault("status", status=500)), UpstreamUnavailable),
    ("aic-502", aic(Fault("status", status=502, body=b"<html>Bad Gateway</html>")), UpstreamUnavailable),
    ("aic-503", aic(Fault("status", status=503)), UpstreamUnavailable),
    ("aic-504", aic(Fault("status", status=504, body=b"")), UpstreamUnavailable),
    ("aic-429-retry-after", aic(Fault("status", status=429, retry_after="1")), UpstreamUnavailable),
    ("aic-500-once", aic(Fault("status", status=500), sticky=False), "ok"),
    ("aic-429-once", aic(Fault("status", status=429, retry_after="1"), sticky=False), "ok"),
    ("aic-read-timeout", aic(Fault("slow", delay=0.6)), UpstreamUnavailable),
    ("aic-dropped-connection", aic(Fault("drop")), UpstreamUnavailable),
    ("aic-truncated-body", aic(Fault("truncated")), UpstreamUnavailable),
    ("aic-garbage-body", aic(body(b"\x00\xffnot json at all")), UpstreamUnavailable),
    ("aic-html-body", aic(body(b"<html><body>maintenance</body></html>")), UpstreamUnavailable),
    (
        "aic-200-without-access-token",
        aic(body(b'{"token_type":"Bearer","expires_in":899}')),
        UpstreamUnavailable,
    ),
    (
        "aic-expires-in-missing",
        aic(body(b'{"access_token":"eyJfaultmissing000000000000"}')),
        UpstreamUnavailable,
    ),
    (
        "aic-expires-in-zero",
        aic(body(b'{"access_token":"eyJfaultzero0000000000000","expires_in":0}')),
        UpstreamUnavailable,
    ),
    (
        "aic-expires-in-negative",
        aic(body(b'{"access_token":"eyJfaultnegative00000000","expires_in":-1}')),
        UpstreamUnavailable,
    ),
    (
        "aic-expires-in-string",
        aic(body(b'{"access_token":"eyJfaultstring0000000000","expires_in":"899"}')),
        UpstreamUnavailable,
    ),
    (
        "secrets-access-denied",
        aws("secrets", "GetSecretValue", client_error("AccessDeniedException", "GetSecretValue")),
        ConfigurationError,
    ),
    (
        "secrets-not-found",
        aws("secrets", "GetSecretValue", client_error("ResourceNotFoundException", "GetSecretValue")),
        ConfigurationError,
    ),
    (
        "secrets-throttled",
        aws("secrets", "GetSecretValue", client_error("ThrottlingException", "GetSecretValue")),
        UpstreamUnavailable,
    ),
    (
        "secrets-decryption-failure",
        aws("secrets", "GetSecretValue", client_error("DecryptionFailure", "GetSecretValue")),
        ConfigurationError,
    ),
    (
        "dynamodb-throttled-read",
        aws("dynamodb", "GetItem", client_error("ProvisionedThroughputExceededException", "GetItem")),
        "ok",
    ),
    (
        "dynamodb-unavailable",
        aws("dynamodb", "GetItem", EndpointConnectionError(endpoint_url="http://dynamodb")),
        "ok",
    ),
    (
        "dynamodb-throttled-lease",
        aws("dynamodb", "UpdateItem", client_error("ThrottlingException", "UpdateItem")),
        "ok",
    ),
    (
        "dynamodb-throttled-write",
        aws("dynamodb", "PutItem", client_error("ThrottlingException", "PutItem")),
        "ok",
    ),
    ("dynamodb-500", aws("dynamodb", "GetItem", client_error("InternalServerError", "GetItem", 500)), "ok"),
    (
        "kms-generate-denied",
        aws("kms", "GenerateDataKey", client_error("AccessDeniedException", "GenerateDataKey")),
        "ok",
    ),
    (
        "kms-generate-throttled",
        aws("kms", "GenerateDataKey", client_error("ThrottlingException", "GenerateDataKey")),
        "ok",
    ),
]


@pytest.mark.parametrize(("name", "inject", "expected"), COLD, ids=[c[0] for c in COLD])
def test_a_fault_on_a_cold_cache(
    world: World, name: str, inject: Callable[[World], None], expected: Any
) -> None:
    FIGURES["faults"] += 1
    endpoint = TokenEndpoint(world.stack.standin.token_url, read_timeout=0.3, sleep=lambda s: None)
    vendor = world.vendor(endpoint=endpoint)
    inject(world)

    if expected == "ok":
        vended = vendor.vend(direct("fr:idm:*"), budget())
        assert vended.token.seconds_left(world.wall()) > 800
    else:
        with pytest.raises(expected) as caught:
            vendor.vend(direct("fr:idm:*"), budget())
        assert len(caught.value.message) > 10
        # Nothing cached that should not be: no token, and no lease left behind.
        item = world.item()
        assert "token_ct" not in item
        assert "token" not in item
        assert "lease_until" not in item

    world.heal()
    again = vendor.vend(direct("fr:idm:*"), budget())
    assert again.token.seconds_left(world.wall()) > 800


def test_aic_connection_refused(world: World) -> None:
    FIGURES["faults"] += 1
    refused = TokenEndpoint(f"http://127.0.0.1:{closed_port()}/am/oauth2/access_token", sleep=lambda s: None)

    with pytest.raises(UpstreamUnavailable, match=r"connection to 127\.0\.0\.1 failed"):
        world.vendor(endpoint=refused).vend(direct("fr:idm:*"), budget())
    assert "lease_until" not in world.item()


WARM = [
    ("warm-aic-503", aic(Fault("status", status=503))),
    ("warm-aic-garbage", aic(body(b"garbage"))),
    (
        "warm-secrets-throttled",
        aws("secrets", "GetSecretValue", client_error("ThrottlingException", "GetSecretValue")),
    ),
]


@pytest.mark.parametrize(("name", "inject"), WARM, ids=[w[0] for w in WARM])
def test_a_fault_during_refresh_serves_the_cached_token(
    world: World, name: str, inject: Callable[[World], None]
) -> None:
    FIGURES["faults"] += 1
    first = world.vendor().vend(direct("fr:idm:*"), budget())
    world.wall.advance(899 - 250)  # inside refresh-ahead, above the minimum validity
    inject(world)

    # Another container: its memory is empty and its key source must read the secret to mint.
    served = world.vendor().vend(direct("fr:idm:*"), budget())

    assert served.token == first.token
    assert served.tier == "stale"
    assert world.metrics.counts["StaleServed"] == 1
    assert "lease_until" not in world.item()


def test_kms_decrypt_denied_on_a_table_hit_mints_instead(world: World) -> None:
    FIGURES["faults"] += 1
    world.vendor().vend(direct("fr:idm:*"), budget())
    world.kms.fail("Decrypt", client_error("AccessDeniedException", "Decrypt"))

    vended = world.vendor().vend(direct("fr:idm:*"), budget())  # a new container: must unwrap the data key

    assert vended.tier == "minted"
    assert world.stack.standin.exchanges == 2


def test_kms_decrypt_throttled_on_a_table_hit_mints_instead(world: World) -> None:
    FIGURES["faults"] += 1
    world.vendor().vend(direct("fr:idm:*"), budget())
    world.kms.fail("Decrypt", client_error("ThrottlingException", "Decrypt"))

    assert world.vendor().vend(direct("fr:idm:*"), budget()).tier == "minted"


def test_a_conditional_write_race_keeps_the_newer_token(world: World) -> None:
    """A holder whose lease lapsed mid-mint must not overwrite the token of the holder that took over."""
    FIGURES["faults"] += 1
    slow = world.vendor(lease_seconds=1)
    original_exchange = slow.minter._exchange

    def exchange_then_lose_the_lease(*args: Any, **kwargs: Any) -> Any:
        issued = original_exchange(*args, **kwargs)
        world.wall.advance(2)  # our lease lapses while we "were slow"
        newer = world.vendor().vend(direct("fr:idm:*"), budget())  # another container takes over
        exchange_then_lose_the_lease.newer = newer  # type: ignore[attr-defined]
        return issued

    slow.minter._exchange = exchange_then_lose_the_lease  # type: ignore[method-assign]
    mine = slow.vend(direct("fr:idm:*"), budget())
    newer = exchange_then_lose_the_lease.newer  # type: ignore[attr-defined]

    stored = world.vendor().vend(direct("fr:idm:*"), budget())  # what every other container now sees
    assert stored.tier == "table"
    assert stored.token.access_token == newer.token.access_token != mine.token.access_token
    assert mine.token.seconds_left(world.wall()) > 800  # the fenced-out caller is still served


def test_a_lease_that_cannot_be_released_lapses_on_its_own(world: World) -> None:
    FIGURES["faults"] += 1
    world.stack.standin.set_sticky_fault(Fault("status", status=503))
    # The lease is taken; the release after the failed mint is throttled, so the lease stays behind.
    # (every later UpdateItem fails too: the renewals before each retry and the release)
    world.dynamodb.fail("UpdateItem", client_error("ThrottlingException", "UpdateItem"), times=10, skip=1)
    vendor = world.vendor(lease_seconds=2)
    with pytest.raises(UpstreamUnavailable):
        vendor.vend(direct("fr:idm:*"), budget())
    assert "lease_until" in world.item()

    world.heal()
    world.wall.advance(3)
    assert world.vendor().vend(direct("fr:idm:*"), budget()).tier == "minted"


def test_the_vendor_stays_healthy_after_every_fault(world: World) -> None:
    """After a burst of different faults in one process, a clean request is served at memory speed."""
    vendor = world.vendor()
    for fault in (Fault("status", status=503), Fault("drop"), Fault("token_body", body=b"{}")):
        world.stack.standin.set_sticky_fault(fault)
        with pytest.raises(UpstreamUnavailable):
            vendor.vend(direct("fr:idm:*"), budget())
    world.heal()
    assert vendor.vend(direct("fr:idm:*"), budget()).tier == "minted"
    assert vendor.vend(direct("fr:idm:*"), budget()).tier == "memory"


def test_a_table_blip_while_another_container_mints_does_not_mint_twice(world: World) -> None:
    FIGURES["faults"] += 1
    from token_vendor.adapters.aws.token_table import TokenTable
    from token_vendor.kernel.cached_token import CachedToken

    key = cache_key(TENANT, world.stack.secret_id, ("fr:idm:*",))
    other = TokenTable(world.stack.table_name, world.stack.client("dynamodb"), clock=world.wall)
    assert other.try_lease(key, "other-container", 5.0, fresh_seconds=300).granted
    vendor = world.make(encrypt=False, wall=world.wall, metrics=world.metrics, dynamodb=world.dynamodb.client)
    # Our first read and lease attempt see the other holder; the first poll fails (a throttle blip).
    world.dynamodb.fail("GetItem", client_error("ThrottlingException", "GetItem"), times=1, skip=1)
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:  # meanwhile the other container finishes and stores its token
            other.store(
                key,
                CachedToken("eyJ-other-container-token-000", world.wall() + 899, "fr:idm:*"),
                "other-container",
            )

    vendor.context.clocks.sleep = nap
    vended = vendor.vend(direct("fr:idm:*"), budget())

    assert vended.tier == "table"
    assert vended.token.access_token == "eyJ-other-container-token-000"
    assert world.stack.standin.token_requests == 0
    assert world.metrics.counts["CacheUnavailable"] == 1


def test_a_slow_aic_past_the_lease_still_gives_one_exchange_and_one_token(world: World) -> None:
    """AIC times out twice, then answers. The holder renews its lease before each retry, so a container
    arriving after the first lease would have lapsed waits instead of minting a second token."""
    FIGURES["faults"] += 1
    # Two attempts time out (1 s each), the third is slow but answers: the exchange ends at ~2.8 s.
    world.stack.standin.push_faults(
        Fault("slow_status", status=504, delay=1.5),
        Fault("slow_status", status=504, delay=1.5),
        Fault("slow", delay=0.8),
    )

    def vendor() -> Any:
        endpoint = TokenEndpoint(world.stack.standin.token_url, read_timeout=1.0, sleep=lambda s: None)
        return world.make(lease_seconds=2.0, endpoint=endpoint)

    results: dict[str, Any] = {}

    def call(name: str) -> None:
        results[name] = vendor().vend(direct("fr:idm:*"), budget(10))

    first = threading.Thread(target=call, args=("first",))
    first.start()
    time.sleep(2.2)  # real time: the first lease (2 s) would have lapsed by now without renewal
    call("second")
    first.join(15)

    assert world.stack.standin.exchanges == 1
    assert results["first"].token.access_token == results["second"].token.access_token
    assert results["second"].tier == "table"
