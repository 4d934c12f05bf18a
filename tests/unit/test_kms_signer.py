"""Keyless signing rules (issue 35), against moto's in-process KMS: no sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest
from moto import mock_aws

from token_vendor.adapters.aic.assertion import sign_assertion, sign_assertion_with
from token_vendor.adapters.aws.key_source import ServiceAccountKey
from token_vendor.adapters.aws.kms_signer import KmsSigner
from token_vendor.kernel.errors import ConfigurationError
from token_vendor.kernel.settings import load_settings

AUD = "https://tenant.example.com:443/am/oauth2/access_token"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kms() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def rsa_signing_key(kms: Any) -> str:
    return str(kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"])


def test_the_secret_mode_assertion_is_byte_for_byte_what_pyjwt_signed_before(rsa_key: Any) -> None:
    key = ServiceAccountKey("acct", rsa_key, "kid-1", "v1")

    ours = sign_assertion_with(key, AUD, now=1000.0, new_jti=lambda: "j")
    before = sign_assertion(rsa_key, "acct", AUD, now=1000.0, new_jti=lambda: "j", kid="kid-1")

    assert ours.jwt == before.jwt  # PKCS#1 v1.5 is deterministic: same header, claims and signature


def test_an_alias_moved_to_another_key_is_followed_within_the_refresh_interval(kms: Any) -> None:
    first, second = rsa_signing_key(kms), rsa_signing_key(kms)
    kms.create_alias(AliasName="alias/sig", TargetKeyId=first)
    clock = Clock()
    signer = KmsSigner("alias/sig", kms, account_id="acct", clock=clock)
    assert signer.current().version_id == first

    kms.update_alias(AliasName="alias/sig", TargetKeyId=second)
    clock.now += 299
    assert signer.current().version_id == first  # no DescribeKey on every mint
    clock.now += 2
    key = signer.current()

    assert key.version_id == second
    public = jwt.PyJWK(key.public_jwk).key
    signed = sign_assertion_with(key, AUD, now=time.time(), new_jti=lambda: "j")
    assert jwt.decode(signed.jwt, public, algorithms=["RS256"], audience=AUD)["sub"] == "acct"
    assert jwt.get_unverified_header(signed.jwt)["kid"] == key.kid


class LateFirstAnswer:
    """KMS whose first DescribeKey is answered only after the alias moved and another thread resolved it."""

    def __init__(self, kms: Any, on_first: Any) -> None:
        self._kms, self._on_first, self._calls = kms, on_first, 0

    def describe_key(self, **kwargs: Any) -> Any:
        self._calls += 1
        answer = self._kms.describe_key(**kwargs)  # the alias as it was when the question was asked
        if self._calls == 1:
            self._on_first()  # meanwhile: the switch, the clock moves on, another thread resolves the new key
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kms, name)


def test_an_answer_about_the_alias_before_a_switch_never_pins_the_old_key_after_it(kms: Any) -> None:
    """Full-suite find (the keyless rotation under load, slow under load): a DescribeKey asked before the
    switch and answered after it was stamped with the time of its answer, so the container held the old key
    as freshly checked until its next re-check; and with two threads resolving outside the lock, that late
    answer also replaced the new key another thread had already installed."""
    first, second = rsa_signing_key(kms), rsa_signing_key(kms)
    kms.create_alias(AliasName="alias/sig", TargetKeyId=first)
    clock = Clock()

    def switch() -> None:
        kms.update_alias(AliasName="alias/sig", TargetKeyId=second)
        clock.now += 301
        assert signer.current().version_id == second  # a later question, answered first

    signer = KmsSigner("alias/sig", LateFirstAnswer(kms, switch), account_id="acct", clock=clock)

    signer.current()  # asked at 0, answered (the old key) after the switch
    assert signer.current().version_id == second
    clock.now += 299
    assert signer.current().version_id == second


def test_a_refused_key_re_resolves_the_alias_at_once(kms: Any) -> None:
    first, second = rsa_signing_key(kms), rsa_signing_key(kms)
    kms.create_alias(AliasName="alias/sig", TargetKeyId=first)
    signer = KmsSigner("alias/sig", kms, account_id="acct", clock=Clock())
    signer.current()
    kms.update_alias(AliasName="alias/sig", TargetKeyId=second)

    assert signer.refresh_now().version_id == second


@pytest.mark.parametrize(
    ("create", "problem"),
    [
        ({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}, "KeyUsage is not SIGN_VERIFY"),
        ({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}, "ECC_NIST_P256 key"),
        ({}, "SYMMETRIC_DEFAULT key"),
    ],
)
def test_a_key_that_cannot_sign_rs256_is_refused_naming_the_setting(
    kms: Any, create: dict[str, str], problem: str
) -> None:
    arn = kms.create_key(**create)["KeyMetadata"]["Arn"]

    with pytest.raises(ConfigurationError, match=rf"SIGNING_KEY_ID .*{problem}"):
        KmsSigner(arn, kms, account_id="acct", clock=Clock()).current()


def test_a_disabled_key_is_refused(kms: Any) -> None:
    arn = rsa_signing_key(kms)
    kms.disable_key(KeyId=arn.rsplit("/", 1)[-1])

    with pytest.raises(ConfigurationError, match="SIGNING_KEY_ID names a key that is not enabled"):
        KmsSigner(arn, kms, account_id="acct", clock=Clock()).current()


def test_an_unknown_key_is_a_configuration_error(kms: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"SIGNING_KEY_ID: KMS refused .*NotFoundException"):
        KmsSigner("alias/nothing", kms, account_id="acct", clock=Clock()).current()


BASE = {"TENANT_FQDN": "tenant.example.com", "TOKEN_CACHE_TABLE": "tokens"}


def test_keyless_needs_no_secret_but_names_the_account() -> None:
    settings = load_settings({**BASE, "SIGNING_KEY_ID": "alias/sig", "SERVICE_ACCOUNT_ID": "acct"})

    assert settings.signing_key_id == "alias/sig"
    assert settings.secret_id is None


def test_keyless_without_the_account_id_names_the_missing_setting() -> None:
    with pytest.raises(ConfigurationError, match="SERVICE_ACCOUNT_ID is required when SIGNING_KEY_ID"):
        load_settings({**BASE, "SIGNING_KEY_ID": "alias/sig"})


def test_without_keyless_the_secret_is_still_required() -> None:
    with pytest.raises(ConfigurationError, match="SERVICE_ACCOUNT_SECRET_ID is required"):
        load_settings({**BASE, "SERVICE_ACCOUNT_ID": "acct"})
