"""Keyless signing (issue 35): the assertion is signed by kms:Sign, no private key exists in the function.

Against the local stack: moto's KMS holds the RSA key, the Authlib-based AIC stand-in verifies the
assertion with the KMS key's public JWK.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from local.aws import create_table
from local.keyless import SIGNING_ALIAS, create_signing_key, enrol_keyless, keyless_env, point_alias
from local.stack import LocalStack
from tests.integration.conftest import FakeWall, Recorder, budget, direct
from token_vendor import wiring as runtime
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws.kms_signer import KmsSigner
from token_vendor.kernel.errors import ConfigurationError, UpstreamUnavailable
from token_vendor.kernel.settings import load_settings
from token_vendor.vend.memory_cache import MemoryCache
from token_vendor.vend.vending import Clocks, TokenVendor
from token_vendor.wiring import compose_vendor


@pytest.fixture
def keyless(fresh_stack: LocalStack) -> LocalStack:
    enrol_keyless(fresh_stack)
    return fresh_stack


class RecordingSession(botocore.session.Session):
    """A botocore session that remembers which services got a client."""

    def __init__(self) -> None:
        super().__init__()
        self.services: list[str] = []

    def create_client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.services.append(service_name)
        return super().create_client(service_name, *args, **kwargs)


def reachable(root: object) -> Iterator[object]:
    """Every object the vendor holds, directly or through its collaborators and closures (a function's
    module globals are not the vendor's: the test module itself holds keys)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (type, types.ModuleType)):
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, types.FunctionType):
            stack.extend(item.__closure__ or ())
        else:
            stack.extend(gc.get_referents(item))


def keyless_vendor(
    stack: LocalStack, kms: Any = None, *, key_clock: Any = time.monotonic, table: str = "", **env: str
) -> TokenVendor:
    if table:
        create_table(stack.client("dynamodb"), table)
        env["TOKEN_CACHE_TABLE"] = table
    settings = load_settings(keyless_env(stack, **env))
    assert settings.signing_key_id is not None
    signer = KmsSigner(
        settings.signing_key_id, kms or stack.client("kms"), account_id=stack.account_id, clock=key_clock
    )
    wall = FakeWall()
    return compose_vendor(
        settings,
        key_source=signer,
        endpoint=TokenEndpoint(settings.token_endpoint_url, sleep=lambda _s: None),
        dynamodb=stack.client("dynamodb"),
        memory=MemoryCache(),
        metrics=Recorder(),
        clocks=Clocks(wall=wall, sleep=lambda _s: None),
    )


def test_a_keyless_vendor_mints_with_no_private_key_and_no_secret(
    keyless: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_key_source(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Secrets Manager key source must not be built in the keyless mode")

    monkeypatch.setattr(runtime, "KeySource", no_key_source)
    for name, value in keyless.aws_env.items():
        monkeypatch.setenv(name, value)
    session = RecordingSession()
    vendor = runtime.build_vendor(load_settings(keyless_env(keyless)), session=session)

    vended = vendor.vend(direct("fr:idm:*"), budget())

    assert vended.token.access_token in keyless.standin.issued_tokens()
    assert "secretsmanager" not in session.services
    assert "kms" in session.services
    assert not [o for o in reachable(vendor) if isinstance(o, rsa.RSAPrivateKey)]


def test_the_assertion_carries_the_thumbprint_of_the_kms_public_key_and_verifies_with_it(
    keyless: LocalStack, tmp_path: Path
) -> None:
    import jwt

    key = create_signing_key(keyless)
    signer = KmsSigner(key.arn, keyless.client("kms"), account_id="acct-1", clock=time.monotonic)
    from token_vendor.adapters.aic.assertion import sign_assertion_with

    signed = sign_assertion_with(
        signer.current(), "https://aud.example:443/x", now=time.time(), new_jti=lambda: "j1"
    )

    header = jwt.get_unverified_header(signed.jwt)
    assert header == {"alg": "RS256", "kid": key.public_jwk["kid"], "typ": "JWT"}
    public = jwt.PyJWK(key.public_jwk).key
    claims = jwt.decode(signed.jwt, public, algorithms=["RS256"], audience="https://aud.example:443/x")
    assert claims["iss"] == claims["sub"] == "acct-1"
    # What Authlib's RFC 7523 grant decodes with (joserfc, the key as a KeySet), unchanged.
    from joserfc import jwt as joserfc_jwt
    from joserfc.jwk import KeySet, RSAKey

    decoded = joserfc_jwt.decode(
        signed.jwt, KeySet([RSAKey.import_key(key.public_jwk)]), algorithms=["RS256"]
    )
    assert decoded.claims["jti"] == "j1"
    jose = shutil.which("jose")
    if jose is None:
        pytest.skip("the 'jose' CLI is not installed (apt-get install jose): only PyJWT verified it")
    (tmp_path / "jwt.txt").write_text(signed.jwt)
    (tmp_path / "pub.jwk").write_text(json.dumps(key.public_jwk))
    result = subprocess.run(
        [jose, "jws", "ver", "-i", str(tmp_path / "jwt.txt"), "-k", str(tmp_path / "pub.jwk"), "-O", "-"],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["jti"] == "j1"


def test_a_key_that_cannot_sign_rs256_is_a_configuration_error_naming_the_setting(
    keyless: LocalStack,
) -> None:
    # The stack's envelope key: symmetric, ENCRYPT_DECRYPT.
    vendor = keyless_vendor(keyless, SIGNING_KEY_ID=keyless.kms_key_id)
    seen = len(keyless.standin.assertions_seen())

    with pytest.raises(ConfigurationError, match="SIGNING_KEY_ID names a SYMMETRIC_DEFAULT key"):
        vendor.vend(direct("fr:idm:*"), budget())
    assert len(keyless.standin.assertions_seen()) == seen  # nothing was sent to AIC


class FailingKms:
    """The stack's KMS, with kms:Sign failing with ``code`` while ``failing`` is set."""

    def __init__(self, kms: Any, code: str, status: int) -> None:
        self._kms = kms
        self._code = code
        self._status = status
        self.failing = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kms, name)

    def sign(self, **kwargs: Any) -> Any:
        if self.failing:
            raise ClientError(
                {
                    "Error": {"Code": self._code, "Message": "no"},
                    "ResponseMetadata": {"HTTPStatusCode": self._status},
                },
                "Sign",
            )
        return self._kms.sign(**kwargs)


def test_kms_refusing_to_sign_is_a_configuration_error(keyless: LocalStack) -> None:
    vendor = keyless_vendor(keyless, FailingKms(keyless.client("kms"), "AccessDeniedException", 400))

    with pytest.raises(ConfigurationError, match=r"SIGNING_KEY_ID.*AccessDeniedException"):
        vendor.vend(direct("fr:idm:*"), budget())


def test_kms_throttled_is_upstream_unavailable_and_a_cached_token_is_served_stale(
    keyless: LocalStack,
) -> None:
    kms = FailingKms(keyless.client("kms"), "ThrottlingException", 400)
    vendor = keyless_vendor(keyless, kms)
    with pytest.raises(UpstreamUnavailable, match="KMS"):
        vendor.vend(direct("fr:idm:*"), budget())

    kms.failing = False
    token = vendor.vend(direct("fr:idm:*"), budget()).token
    kms.failing = True
    vendor.context.clocks.wall.advance(899 - 200)  # type: ignore[attr-defined]  # inside the refresh-ahead window

    vended = vendor.vend(direct("fr:idm:*"), budget())

    assert vended.token.access_token == token.access_token
    assert vended.tier == "stale"


class KeyClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rotation_to_a_second_kms_key_under_load_fails_no_vend(keyless: LocalStack) -> None:
    old = keyless.standin.state.accounts[keyless.account_id].public_jwks[0]
    old_key_id = keyless.client("kms").describe_key(KeyId=SIGNING_ALIAS)["KeyMetadata"]["KeyId"]
    key_clock = KeyClock()
    # Each container its own table and wall clock: moving one's clock makes it mint, and no other's.
    fleet = [
        keyless_vendor(keyless, key_clock=key_clock, table=f"{keyless.table_name}-{i}") for i in range(4)
    ]
    failures: list[BaseException] = []
    vends = [0]
    stop = threading.Event()

    def load(vendor: TokenVendor) -> None:
        while not stop.is_set():
            try:
                # Every vend mints: its clock then passes the token's expiry (rotation under minting load).
                vendor.vend(direct("fr:idm:*"), budget())
                vendor.context.clocks.wall.advance(900)  # type: ignore[attr-defined]
                vends[0] += 1
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=load, args=(v,)) for v in fleet]
    for thread in threads:
        thread.start()
    try:
        new = create_signing_key(keyless)
        keyless.standin.set_keys(keyless.account_id, [old, new.public_jwk])  # 1: AIC lists both
        point_alias(keyless, new)  # 3: the switch
        key_clock.now += 301  # within 5 minutes every container re-resolves the alias
        deadline = time.monotonic() + 60  # a bound, not a wait: each container switches at its next mint
        while any(v.minter.key_version() != new.arn for v in fleet) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(v.minter.key_version() == new.arn for v in fleet)
        keyless.standin.set_keys(keyless.account_id, [new.public_jwk])  # 4: only then is the old key gone
        keyless.client("kms").schedule_key_deletion(KeyId=old_key_id, PendingWindowInDays=7)
        done = vends[0] + 20
        while vends[0] < done and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert vends[0] >= 20


def test_a_refused_key_makes_the_vendor_re_resolve_the_alias_at_once_and_mint_with_the_new_key(
    keyless: LocalStack,
) -> None:
    key_clock = KeyClock()  # never advances: only AIC's refusal can make the vendor look again
    vendor = keyless_vendor(keyless, key_clock=key_clock)
    vendor.vend(direct("fr:idm:*"), budget())
    new = create_signing_key(keyless)
    point_alias(keyless, new)
    keyless.standin.set_keys(keyless.account_id, [new.public_jwk])  # AIC knows only the new key now

    vended = vendor.vend(direct("fr:am:*"), budget())

    assert vended.tier == "minted"
    assert vendor.minter.key_version() == new.arn
    assert vended.token.key_version == new.arn
