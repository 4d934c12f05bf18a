from __future__ import annotations

import os
from typing import Any

import pytest

from token_vendor.adapters.aws.envelope import Envelope, EnvelopeError
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.kernel.cached_token import CachedToken, fingerprint
from token_vendor.vend.memory_cache import MemoryCache


def test_the_memory_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=3)
    for i in range(3):
        cache.put(f"k{i}", CachedToken(f"t{i}", 100.0, "s"), 0.0)
    cache.get("k0")
    cache.put("k3", CachedToken("t3", 100.0, "s"), 0.0)

    assert len(cache) == 3
    assert cache.get("k1") is None
    assert cache.get("k0") is not None


def test_the_memory_cache_never_replaces_a_fresher_token() -> None:
    cache = MemoryCache()
    cache.put("k", CachedToken("new", 200.0, "s"), 0.0)
    cache.put("k", CachedToken("old", 100.0, "s"), 0.0)
    assert cache.get("k") == CachedToken("new", 200.0, "s")


def test_a_warm_entry_is_rechecked_against_the_table_every_minute() -> None:
    cache = MemoryCache()
    cache.put("k", CachedToken("t", 1000.0, "s"), checked_at=100.0)

    assert cache.get_checked("k", 159.9) is not None
    assert cache.get_checked("k", 160.0) is None  # a minute on: read the shared item again
    assert cache.get_checked("k", 99.0) is None  # a clock that went back cannot skip the check
    cache.put("k", CachedToken("older", 900.0, "s"), checked_at=160.0)  # the re-read found an older copy
    assert cache.get_checked("k", 200.0) == CachedToken("t", 1000.0, "s")


def test_cache_keys_separate_tenants_accounts_and_scope_sets_and_stay_short() -> None:
    keys = {
        cache_key("t1", "a", ("x",)),
        cache_key("t2", "a", ("x",)),
        cache_key("t1", "b", ("x",)),
        cache_key("t1", "a", ("x", "y")),
    }
    assert len(keys) == 4
    long_key = cache_key("t", "a", tuple(f"{i:03d}" + "s" * 124 for i in range(20)))
    assert len(long_key.encode()) < 2048


def test_fingerprints_are_short_and_one_way() -> None:
    assert fingerprint("secret-token") == fingerprint("secret-token")
    assert len(fingerprint("secret-token")) == 12
    assert "secret" not in fingerprint("secret-token")
    assert "secret" not in repr(CachedToken("secret-token", 1.0, "s"))


class FakeKms:
    """Wraps data keys by XOR with a fixed pad; counts calls and checks the encryption context."""

    def __init__(self) -> None:
        self.pad = os.urandom(32)
        self.calls: list[str] = []

    def _xor(self, data: bytes) -> bytes:
        return bytes(a ^ b for a, b in zip(data, self.pad, strict=True))

    def generate_data_key(self, **kwargs: Any) -> dict[str, bytes]:
        self.calls.append("GenerateDataKey")
        assert kwargs["EncryptionContext"] == {"purpose": "token-cache"}
        plaintext = os.urandom(32)
        return {"Plaintext": plaintext, "CiphertextBlob": self._xor(plaintext)}

    def decrypt(self, **kwargs: Any) -> dict[str, bytes]:
        self.calls.append("Decrypt")
        return {"Plaintext": self._xor(kwargs["CiphertextBlob"])}


def _envelope(kms: FakeKms, clock: list[float]) -> Envelope:
    return Envelope("key", kms, clock=lambda: clock[0], context={"purpose": "token-cache"})  # type: ignore[arg-type]


def test_sealed_tokens_open_only_with_the_same_associated_data() -> None:
    kms, clock = FakeKms(), [0.0]
    sealed = _envelope(kms, clock).seal(b"token", b"pk-1")

    assert b"token" not in sealed.ciphertext
    assert _envelope(kms, clock).open(sealed, b"pk-1") == b"token"
    with pytest.raises(EnvelopeError):
        _envelope(kms, clock).open(sealed, b"pk-2")


def test_data_keys_are_reused_within_their_lifetime_and_renewed_after() -> None:
    kms, clock = FakeKms(), [0.0]
    writer, reader = _envelope(kms, clock), _envelope(kms, clock)
    sealed = [writer.seal(b"t%d" % i, b"k") for i in range(5)]
    for s in sealed:
        reader.open(s, b"k")
    assert kms.calls == ["GenerateDataKey", "Decrypt"]

    clock[0] = 301.0
    writer.seal(b"t", b"k")
    assert kms.calls[-1] == "GenerateDataKey"
