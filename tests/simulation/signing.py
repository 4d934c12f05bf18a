"""Keyless histories (issue 35): a share of the seeds sign through ``KmsSigner`` and a simulated KMS.

``SimSigningKMS`` answers ``DescribeKey``, ``GetPublicKey`` and ``Sign`` for one RSA_2048 signing key whose
private part it holds (the simulation's one key), with the history's AWS latency: in a brownout a ``Sign``
may be cut by the read timeout the vendor's ``BoundedClient`` set, as a DynamoDB call may. The vendor
holds no private key in these histories: its key source is the real ``KmsSigner``.
"""

from __future__ import annotations

import random
from typing import Any

from tests.simulation.world import Latency, Scheduler, read_timeout

SIGNING_ALIAS = "alias/sim-signing"
SIGNING_ARN = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-00000000516e"
# A quarter of the flavoured seeds; the constant keeps every regression seed found before keyless histories
# existed (tests/simulation/simulate.py) the history it was found in (test_simulation.py checks).
_KEYLESS_SALT = 171
KEYLESS_SHARE = 0.25


def draws_keyless(seed: int) -> bool:
    return random.Random(seed * 613 + _KEYLESS_SALT).random() < KEYLESS_SHARE


class SimSigningKMS(Latency):
    def __init__(self, scheduler: Scheduler, rng: random.Random, private_key: Any, latency: Any) -> None:
        super().__init__(scheduler, random.Random(rng.random()), latency)
        self._key = private_key

    def describe_key(self, **_: Any) -> dict[str, Any]:
        self._scheduler.point("KMS DescribeKey")
        if self.wait("DescribeKey"):
            raise read_timeout("DescribeKey")
        metadata = {"Arn": SIGNING_ARN, "KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY", "Enabled": True,
                    "KeyState": "Enabled", "SigningAlgorithms": ["RSASSA_PKCS1_V1_5_SHA_256"]}  # fmt: skip
        return {"KeyMetadata": metadata}

    def get_public_key(self, **_: Any) -> dict[str, Any]:
        from cryptography.hazmat.primitives import serialization

        self._scheduler.point("KMS GetPublicKey")
        if self.wait("GetPublicKey"):
            raise read_timeout("GetPublicKey")
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"KeyId": SIGNING_ARN, "PublicKey": der}

    def sign(self, *, Message: bytes, **_: Any) -> dict[str, Any]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        self._scheduler.point("KMS Sign")
        if self.wait("Sign"):
            raise read_timeout("Sign")
        return {
            "KeyId": SIGNING_ARN,
            "Signature": self._key.sign(Message, padding.PKCS1v15(), hashes.SHA256()),
        }
