from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives import serialization

from local.stack import private_jwk
from token_vendor.adapters.aws.key_source import KeySource, parse_secret
from token_vendor.kernel.errors import ConfigurationError, UpstreamUnavailable

SECRET_ID = "aic/service-account"
# A PEM frame around garbage (spelled in parts so no scanner mistakes it for a committed key).
NOT_A_KEY_PEM = "-----BEGIN " + "PRIVATE KEY-----\nAAAA\n-----END " + "PRIVATE KEY-----"
V1 = "a" * 32
V2 = "b" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secrets_client() -> Any:
    return boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stubber(secrets_client: Any) -> Iterator[Stubber]:
    with Stubber(secrets_client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def _answer(stub: Stubber, secret: str, version: str) -> None:
    stub.add_response(
        "get_secret_value",
        {
            "ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:x",
            "Name": SECRET_ID,
            "SecretString": secret,
            "VersionId": version,
        },
        {"SecretId": SECRET_ID, "VersionStage": "AWSCURRENT"},
    )


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class TestEverySecretForm:
    def test_json_with_jwk(self, rsa_key: Any) -> None:
        key = parse_secret(json.dumps({"serviceAccountId": "acct", "jwk": private_jwk(rsa_key)}), "v1", None)
        assert key.account_id == "acct"
        assert key.private_key.private_numbers() == rsa_key.private_numbers()
        assert key.kid is None

    def test_json_with_jwk_and_kid(self, rsa_key: Any) -> None:
        jwk = {**private_jwk(rsa_key), "kid": "k1"}
        assert parse_secret(json.dumps({"serviceAccountId": "a", "jwk": jwk}), "v1", None).kid == "k1"

    def test_json_with_pem(self, rsa_key: Any) -> None:
        key = parse_secret(
            json.dumps({"serviceAccountId": "acct", "privateKeyPem": _pem(rsa_key)}), "v1", None
        )
        assert key.private_key.private_numbers() == rsa_key.private_numbers()

    def test_bare_key_jwk_as_downloaded_with_the_id_in_the_environment(self, rsa_key: Any) -> None:
        key = parse_secret(json.dumps(private_jwk(rsa_key)), "v1", "acct-env")
        assert key.account_id == "acct-env"

    def test_bare_pem_with_the_id_in_the_environment(self, rsa_key: Any) -> None:
        assert parse_secret(_pem(rsa_key), "v1", "acct-env").account_id == "acct-env"

    def test_a_jwk_with_only_n_e_d_is_completed(self, rsa_key: Any) -> None:
        jwk = {k: v for k, v in private_jwk(rsa_key).items() if k in ("kty", "n", "e", "d")}
        key = parse_secret(json.dumps({"serviceAccountId": "a", "jwk": jwk}), "v1", None)
        assert key.private_key.private_numbers().d == rsa_key.private_numbers().d


def _malformed(rsa_key: Any) -> list[tuple[str, str]]:
    jwk = private_jwk(rsa_key)
    return [
        ("not a key", "neither JSON nor a PEM"),
        ("{broken", "not valid JSON"),
        ("[1, 2]", "must be an object"),
        (json.dumps({"jwk": jwk}), "serviceAccountId"),
        (json.dumps({"serviceAccountId": "a"}), "lacks 'jwk'"),
        (json.dumps({"serviceAccountId": "a", "jwk": "text"}), "JSON object"),
        (json.dumps({"serviceAccountId": "a", "jwk": {**jwk, "kty": "EC"}}), "not an RSA key"),
        (
            json.dumps({"serviceAccountId": "a", "jwk": {k: v for k, v in jwk.items() if k != "d"}}),
            "no private part",
        ),
        (json.dumps({"serviceAccountId": "a", "jwk": {k: v for k, v in jwk.items() if k != "qi"}}), "qi"),
        (json.dumps({"serviceAccountId": "a", "jwk": {**jwk, "n": "!!!"}}), "'n'"),
        (json.dumps({"serviceAccountId": "a", "jwk": {**jwk, "p": jwk["q"]}}), "consistent"),
        (
            json.dumps(
                {
                    "serviceAccountId": "a",
                    "privateKeyPem": NOT_A_KEY_PEM,
                }
            ),
            "PEM",
        ),
        (json.dumps(jwk), "SERVICE_ACCOUNT_ID"),
    ]


def test_each_malformed_secret_names_the_problem_and_echoes_no_value(
    rsa_key: Any, caplog: pytest.LogCaptureFixture
) -> None:
    jwk = private_jwk(rsa_key)
    for secret, says in _malformed(rsa_key):
        with pytest.raises(ConfigurationError) as caught:
            parse_secret(secret, "v1", None)
        assert says in caught.value.message, (says, caught.value.message)
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            assert jwk[member] not in caught.value.message
            assert jwk[member][:20] not in str(caught.value.__cause__ or "")


def test_a_short_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    with pytest.raises(ConfigurationError, match="1024 bits"):
        parse_secret(json.dumps({"serviceAccountId": "a", "jwk": private_jwk(small)}), "v1", None)


def test_the_key_is_loaded_once_per_version_and_reread_after_the_interval(
    rsa_key: Any, other_rsa_key: Any, secrets_client: Any, stubber: Stubber
) -> None:
    clock = Clock()
    source = KeySource(SECRET_ID, secrets_client, clock=clock)
    _answer(stubber, json.dumps({"serviceAccountId": "a", "jwk": private_jwk(rsa_key)}), V1)
    first = source.current()
    clock.now += 299
    assert source.current() is first  # no call: the stub would fail on an unexpected one

    clock.now += 2
    _answer(stubber, json.dumps({"serviceAccountId": "a", "jwk": private_jwk(rsa_key)}), V1)
    assert source.current() is first  # same version: the key object is reused, not re-parsed

    clock.now += 301
    _answer(stubber, json.dumps({"serviceAccountId": "a", "jwk": private_jwk(other_rsa_key)}), V2)
    rotated = source.current()
    assert rotated.version_id == V2
    assert rotated.private_key.private_numbers() == other_rsa_key.private_numbers()


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("ResourceNotFoundException", "not found"),
        ("AccessDeniedException", "access denied"),
        ("DecryptionFailure", "decrypted"),
    ],
)
def test_permanent_secrets_manager_errors_are_configuration_errors(
    secrets_client: Any, stubber: Stubber, code: str, says: str
) -> None:
    stubber.add_client_error("get_secret_value", service_error_code=code, http_status_code=400)

    with pytest.raises(ConfigurationError, match=says):
        KeySource(SECRET_ID, secrets_client, clock=Clock()).current()


def test_throttling_with_no_key_yet_is_upstream_unavailable(secrets_client: Any, stubber: Stubber) -> None:
    stubber.add_client_error(
        "get_secret_value", service_error_code="ThrottlingException", http_status_code=400
    )

    with pytest.raises(UpstreamUnavailable, match="ThrottlingException"):
        KeySource(SECRET_ID, secrets_client, clock=Clock()).current()


def test_a_failed_reread_keeps_the_key_in_use(
    rsa_key: Any, secrets_client: Any, stubber: Stubber, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    source = KeySource(SECRET_ID, secrets_client, clock=clock)
    _answer(stubber, json.dumps({"serviceAccountId": "a", "jwk": private_jwk(rsa_key)}), V1)
    first = source.current()
    clock.now += 400
    stubber.add_client_error(
        "get_secret_value", service_error_code="InternalServiceError", http_status_code=500
    )

    with caplog.at_level(logging.WARNING, logger="token_vendor"):
        assert source.current() is first
    assert "keeping the key in use" in caplog.text


def test_a_binary_secret_is_refused(secrets_client: Any, stubber: Stubber) -> None:
    stubber.add_response(
        "get_secret_value",
        {"Name": SECRET_ID, "SecretBinary": b"\x00", "VersionId": V1},
        {"SecretId": SECRET_ID, "VersionStage": "AWSCURRENT"},
    )
    with pytest.raises(ConfigurationError, match="SecretString"):
        KeySource(SECRET_ID, secrets_client, clock=Clock()).current()


def test_repr_shows_no_key_material(rsa_key: Any) -> None:
    key = parse_secret(json.dumps({"serviceAccountId": "a", "jwk": private_jwk(rsa_key)}), "v1", None)
    assert str(rsa_key.private_numbers().d) not in repr(key)
    assert "RSAPrivateKey" not in repr(key)


def test_a_malformed_rotation_keeps_the_working_key_and_logs_the_problem(
    rsa_key: Any, secrets_client: Any, stubber: Stubber, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    source = KeySource(SECRET_ID, secrets_client, clock=clock)
    _answer(stubber, json.dumps({"serviceAccountId": "a", "jwk": private_jwk(rsa_key)}), V1)
    first = source.current()
    clock.now += 301
    _answer(stubber, json.dumps({"serviceAccountId": "a"}), V2)

    with caplog.at_level(logging.ERROR, logger="token_vendor"):
        assert source.current() is first
    assert any(getattr(r, "problem", "").startswith("secret JSON lacks 'jwk'") for r in caplog.records)
