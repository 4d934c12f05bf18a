"""Envelope encryption of cached tokens: AES-256-GCM under a KMS data key (CONTRACT section 8).

The item's key is the associated data, so a ciphertext copied under another item's key fails to
decrypt: someone who can write the table cannot move a token to a scope set it was not minted for.
Plaintext data keys live in memory for a bounded time, so a table hit costs no KMS call in the steady
state, and a new data key is generated at most every ``data_key_seconds`` for encryption.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from token_vendor.kernel.errors import EnvelopeError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

DATA_KEY_SECONDS = 300.0
MAX_CACHED_DATA_KEYS = 16
NONCE_BYTES = 12


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes  # AES-GCM output (ciphertext + tag)
    nonce: bytes
    wrapped_key: bytes  # the data key, encrypted by KMS


class Envelope:
    def __init__(
        self,
        key_id: str,
        client: KMSClient,
        *,
        clock: Callable[[], float],
        context: dict[str, str],
        data_key_seconds: float = DATA_KEY_SECONDS,
    ) -> None:
        self._key_id = key_id
        self._client = client
        self._clock = clock
        # KMS encryption context: binds every data key to this purpose and table, and appears in CloudTrail.
        self._context = context
        self._data_key_seconds = data_key_seconds
        self._lock = threading.Lock()
        self._current: tuple[bytes, bytes, float] | None = None  # plaintext, wrapped, created
        self._unwrapped: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def seal(self, plaintext: bytes, associated_data: bytes) -> Sealed:
        data_key, wrapped = self._data_key_for_encryption()
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(AESGCM(data_key).encrypt(nonce, plaintext, associated_data), nonce, wrapped)

    def open(self, sealed: Sealed, associated_data: bytes) -> bytes:
        data_key = self._unwrap(sealed.wrapped_key)
        try:
            return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, associated_data)
        except InvalidTag as exc:
            raise EnvelopeError("cached token failed authentication (moved or altered item)") from exc
        except (ValueError, TypeError) as exc:  # a nonce or key of the wrong length: a malformed item
            raise EnvelopeError("cached token is malformed") from exc

    def _data_key_for_encryption(self) -> tuple[bytes, bytes]:
        now = self._clock()
        with self._lock:
            current = self._current
        if current is not None and now - current[2] < self._data_key_seconds:
            return current[0], current[1]
        # KMS is called outside the lock: a slow call must not hold the other threads of this container
        # past their deadlines; two threads may then both make a data key, which is harmless.
        response = self._client.generate_data_key(
            KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=self._context
        )
        plaintext, wrapped = response["Plaintext"], response["CiphertextBlob"]
        with self._lock:
            self._current = (plaintext, wrapped, now)
            self._remember(wrapped, plaintext, now)
        return plaintext, wrapped

    def _unwrap(self, wrapped: bytes) -> bytes:
        now = self._clock()
        with self._lock:
            cached = self._unwrapped.get(wrapped)
            if cached is not None and now - cached[1] < self._data_key_seconds:
                return cached[0]
        response = self._client.decrypt(
            CiphertextBlob=wrapped, KeyId=self._key_id, EncryptionContext=self._context
        )
        plaintext = response["Plaintext"]
        with self._lock:
            self._remember(wrapped, plaintext, now)
        return plaintext

    def _remember(self, wrapped: bytes, plaintext: bytes, now: float) -> None:
        self._unwrapped[wrapped] = (plaintext, now)
        self._unwrapped.move_to_end(wrapped)
        while len(self._unwrapped) > MAX_CACHED_DATA_KEYS:
            self._unwrapped.popitem(last=False)
