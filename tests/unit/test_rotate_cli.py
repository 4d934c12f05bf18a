"""``aic-token rotate``'s refusals that need no stack (issues 30 and 34): each is one line with its exit code,
before any AWS call or write."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import botocore.session
import pytest

from token_client.rotate import Idm, run

KEY = {"kty": "RSA", "n": "sXch" + "A" * 338, "e": "AQAB"}


class RecordingLambda:
    """A Lambda client that records what it was asked and answers the rotation function's status."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        status = {"AWSCURRENT": {"versionId": "v1", "kid": "k", "account": "acct", "publicJwk": KEY}}
        return {"Payload": io.BytesIO(json.dumps(status).encode())}


def _run(argv: list[str], client: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("AIC_ADMIN_TOKEN", "test-admin-token")
    try:
        return run(argv, lambda_client=client, out=io.StringIO())
    except SystemExit as exit_:
        return int(exit_.code or 0)


@pytest.mark.parametrize(
    "url", ["http://openam-x.id.forgerock.io", "http://10.0.0.7:8080", "http://127.evil.example"]
)
def test_a_clear_text_admin_endpoint_is_refused_before_any_aws_call(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = RecordingLambda()

    code = _run(["--function", "rot", "--idm-url", url], client, monkeypatch)

    err = capsys.readouterr().err
    assert code == 7, err
    assert err.count("\n") == 1
    assert "clear text" in err
    assert "https://" in err
    assert client.calls == []


@pytest.mark.parametrize(
    "url",
    ["https://openam-x.id.forgerock.io", "http://127.0.0.1:8080", "http://127.8.9.10", "http://[::1]:9"],
)
def test_https_or_a_loopback_http_endpoint_goes_on_to_the_status_step(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = RecordingLambda()

    _run(["--function", "rot", "--idm-url", url, "--dry-run"], client, monkeypatch)

    assert [json.loads(c["Payload"]) for c in client.calls] == [{"action": "status"}]


def test_an_idm_url_that_parsers_read_differently_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``https://EVIL\\@tenant`` is host ``tenant`` to urlsplit and ``evil`` to urllib3, which sends."""
    client = RecordingLambda()

    code = _run(
        ["--function", "rot", "--idm-url", "https://EVIL\\@openam-x.id.forgerock.io"], client, monkeypatch
    )

    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert client.calls == []


@pytest.mark.parametrize("function", ["", "not a name", "arn:aws:s3:::bucket"])
def test_an_empty_or_malformed_function_is_exit_7_with_a_hint(
    function: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 34: ``--function ""`` reached botocore, whose ParamValidationError was exit 6 (retry later)."""
    client = botocore.session.get_session().create_client(
        "lambda",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",  # a placeholder: nothing is sent
    )

    code = _run(["--function", function, "--idm-url", "https://tenant.example"], client, monkeypatch)

    err = capsys.readouterr().err
    assert code == 7, err
    assert err.count("\n") == 1
    assert "KeyRotationFunctionArn" in err


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_keys_are_the_same_key_by_their_numbers_whatever_else_they_carry() -> None:
    from token_client.rotate import key_numbers

    n = bytes([0xB1]) + bytes(255)
    plain = {"kty": "RSA", "n": _b64(n), "e": "AQAB"}
    padded = {"kty": "RSA", "n": _b64(b"\0" + n), "e": _b64(b"\0\1\0\1"), "kid": "other", "use": "sig"}

    assert key_numbers(plain) == key_numbers(padded) == (int.from_bytes(n, "big"), 65537)
    assert key_numbers({**plain, "kty": "EC"}) is None
    assert key_numbers({"kty": "RSA", "n": "not base64!", "e": "AQAB"}) is None
    assert key_numbers({"kty": "RSA", "e": "AQAB"}) is None


class FakeIdm:
    """The IDM API answering a read with ``keys``; records every request."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.requests: list[str] = []

    def request(self, method: str, url: str, **_: Any) -> Any:
        self.requests.append(method)
        body = {"_rev": "3", "jwks": json.dumps({"keys": self.keys})}
        return type("Response", (), {"status": 200, "data": json.dumps(body).encode()})()


def test_no_key_set_without_the_live_key_is_ever_written() -> None:
    """Whatever an edit or a concurrent writer did, a jwks without the fleet's key is never sent."""
    from token_client.rotate import RotationRefused, key_numbers

    live = key_numbers(KEY)
    assert live is not None
    other = {"kty": "RSA", "n": _b64(b"\xc3" + bytes(255)), "e": "AQAB"}
    http = FakeIdm([KEY, other])

    with pytest.raises(RotationRefused, match="nothing was written"):
        Idm("https://tenant.example", "acct", "token", http=http).change(lambda keys: [other], live)

    http.keys = [other]  # AIC lost the live key meanwhile: adding a key would write a set without it
    with pytest.raises(RotationRefused):
        Idm("https://tenant.example", "acct", "token", http=http).change(lambda keys: [*keys, other], live)
    assert http.requests == ["GET", "GET"]  # two reads, no write


@pytest.mark.parametrize(
    ("env", "argv", "says"),
    [
        ({}, [], "no AWS region"),
        ({}, ["--region", "eu-wst-2"], "unknown AWS region 'eu-wst-2'"),
        ({"AWS_REGION": "eu-wst-2"}, [], "unknown AWS region 'eu-wst-2'"),
    ],
)
def test_rotate_never_falls_back_to_a_region_silently(
    env: dict[str, str],
    argv: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CONTRACT section 9: the CLI honours AWS_REGION and AWS_DEFAULT_REGION and never falls back to a
    region silently; an unknown region is exit 7 with a one-line hint, before any AWS call."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIC_ADMIN_TOKEN", "test-admin-token")

    code = run(["--function", "rot", "--idm-url", "https://t.example", *argv], out=io.StringIO())

    err = capsys.readouterr().err
    assert code == 7, err
    assert err.count("\n") == 1
    assert says in err
