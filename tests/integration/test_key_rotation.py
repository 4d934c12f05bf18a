"""Issue 6: rotating the service account's key is safe."""

from __future__ import annotations

import time
from typing import Any

import pytest

from local.stack import LocalStack, public_jwk
from tests.integration.conftest import budget, direct
from token_vendor.kernel.errors import UpstreamRejected

pytestmark = pytest.mark.integration


def _count_reads(client: Any) -> list[str]:
    reads: list[str] = []
    client.meta.events.register("before-call.secretsmanager.GetSecretValue", lambda **_: reads.append("read"))
    return reads


def test_tokens_keep_flowing_through_a_rotation(
    make_vendor: Any, fresh_stack: LocalStack, other_rsa_key: Any
) -> None:
    secrets = fresh_stack.client("secretsmanager")
    reads = _count_reads(secrets)
    vendor = make_vendor(secretsmanager=secrets)
    before = vendor.vend(direct("fr:idm:*"), budget())

    # The operator rotates: a new key at AIC, the secret updated, then the old key removed at AIC.
    fresh_stack.standin.set_keys(
        fresh_stack.account_id, [public_jwk(fresh_stack.key), public_jwk(other_rsa_key)]
    )
    fresh_stack.put_secret(fresh_stack.secret_for(other_rsa_key))
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(other_rsa_key)])

    # Tokens minted before stay valid and keep being served...
    assert vendor.vend(direct("fr:idm:*"), budget()).token == before.token
    # ...and the next mint meets invalid_grant with the old key, re-reads the secret once, and succeeds.
    after = vendor.vend(direct("fr:am:*"), budget())

    assert after.tier == "minted"
    assert reads == ["read", "read"]
    assert fresh_stack.standin.token_requests == 3  # one mint before, the rejected attempt, the retry
    assert fresh_stack.standin.exchanges == 2


def test_a_rejection_that_is_not_a_rotation_gives_up_after_one_reread(
    make_vendor: Any, fresh_stack: LocalStack, other_rsa_key: Any
) -> None:
    secrets = fresh_stack.client("secretsmanager")
    reads = _count_reads(secrets)
    vendor = make_vendor(secretsmanager=secrets)
    vendor.vend(direct("fr:idm:*"), budget())
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(other_rsa_key)])  # AIC lost our key

    with pytest.raises(UpstreamRejected) as caught:
        vendor.vend(direct("fr:am:*"), budget())

    assert caught.value.upstream_code == "invalid_grant"
    assert reads == ["read", "read"]  # one immediate re-read; same version, so no second attempt
    assert fresh_stack.standin.token_requests == 2


def test_a_new_secret_version_is_used_after_the_reread_interval(
    make_vendor: Any, fresh_stack: LocalStack, other_rsa_key: Any
) -> None:
    from token_vendor.adapters.aws.key_source import KeySource

    clock = [time.monotonic()]
    source = KeySource(fresh_stack.secret_id, fresh_stack.client("secretsmanager"), clock=lambda: clock[0])
    first = source.current()
    fresh_stack.put_secret(fresh_stack.secret_for(other_rsa_key))

    assert source.current() is first
    clock[0] += 301
    rotated = source.current()
    assert rotated.version_id != first.version_id
    assert rotated.private_key.private_numbers() == other_rsa_key.private_numbers()
