"""Issue 22, from a new user's trial: setup mistakes are one line and exit 7 (never 6, never a traceback);
bad arguments are exit 2; ``--version`` and ``--help`` say what a user needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import urllib3

from token_client import SetupError, TokenClient
from token_client import __main__ as cli
from token_client.transports import HttpTransport


@pytest.fixture
def bare_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials, no region, no profiles: a fresh laptop."""
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_an_unknown_profile_is_exit_7_with_a_hint(
    bare_machine: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--scope", "fr:idm:*", "--function", "token-vendor", "--profile", "nosuch"])

    assert code == 7
    assert "nosuch" in _one_line(capsys)


def test_cache_status_without_a_region_is_exit_7(
    bare_machine: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["cache", "status", "--table", "tokens"]) == 7
    assert "--region" in _one_line(capsys)


def test_no_credentials_is_exit_7_not_retry_later(
    bare_machine: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--scope", "fr:idm:*", "--function", "token-vendor", "--region", "eu-west-2"])

    assert code == 7
    assert "no AWS credentials" in _one_line(capsys)


def test_a_host_that_does_not_resolve_is_exit_7(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class NoDns:
        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise urllib3.exceptions.NameResolutionError("api.exmaple", None, OSError("no such host"))  # type: ignore[arg-type]

    class Credentials:
        def get_frozen_credentials(self) -> Any:
            from botocore.credentials import Credentials as Frozen

            return Frozen("AKIDEXAMPLE", "secret")

    class Session:
        region_name = "eu-west-2"

        def get_credentials(self) -> Credentials:
            return Credentials()

    url = "https://api.exmaple/v1/token"
    transport = HttpTransport(url, session=Session(), pool=NoDns())  # type: ignore[arg-type]
    monkeypatch.setattr(TokenClient, "for_url", classmethod(lambda cls, u, **kw: TokenClient(transport)))

    assert cli.main(["--scope", "fr:idm:*", "--url", url]) == 7
    assert "api.exmaple does not resolve" in _one_line(capsys)


def test_setup_errors_are_not_retried() -> None:
    assert SetupError("x").retryable is False


@pytest.mark.parametrize(
    "argv",
    [
        ["--scope", "", "--function", "token-vendor"],
        ["--scope", "   ", "--function", "token-vendor"],
        ["--scope", "fr:idm:*", "--url", "https://abc.execute-api.eu-west-2.amazonaws.com/v1/token?scope=x"],
        ["--scope", "fr:idm:*", "--url", "https://abc.example:notaport/v1/token"],
    ],
    ids=["empty scope", "blank scope", "URL with a query", "malformed port"],
)
def test_bad_arguments_are_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)

    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])

    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("aic-token 0.")


def test_help_names_cache_exit_codes_and_the_lambda_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])

    text = capsys.readouterr().out
    assert "cache status" in text
    assert "exit codes" in text
    assert "AWS_ENDPOINT_URL_LAMBDA" in text
    assert "--service" in text


def test_an_unexpected_failure_is_one_line_exit_7(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "get", broken)

    assert cli.main(["--scope", "fr:idm:*", "--function", "x"]) == 7
    assert "disk on fire" in _one_line(capsys)


# Issue 34 item 3: the mistakes a newcomer made, each with its message and exit code (4 or 7, never 6).


@pytest.fixture
def some_credentials(bare_machine: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")


def test_a_misspelt_region_is_exit_7_not_retry_later(
    some_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--scope", "fr:idm:*", "--function", "token-vendor", "--region", "eu-wst-2"])

    assert code == 7
    assert "unknown AWS region 'eu-wst-2'" in _one_line(capsys)


def test_no_region_on_function_is_exit_7_never_us_east_1(
    some_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--scope", "fr:idm:*", "--function", "token-vendor"])

    assert code == 7
    line = _one_line(capsys)
    assert "no AWS region" in line
    assert "AWS_REGION" in line
    assert "AWS_DEFAULT_REGION" in line


def test_the_function_arn_names_the_region(some_credentials: None) -> None:
    arn = "arn:aws:lambda:eu-west-2:123456789012:function:token-vendor"
    transport = TokenClient.for_function(arn)._transport

    assert transport._client.meta.region_name == "eu-west-2"  # type: ignore[attr-defined]


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_function_and_cache_honour_aws_region_and_aws_default_region(
    variable: str, some_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from token_client.cache_tool import CacheTool

    monkeypatch.setenv(variable, "eu-west-2")

    assert CacheTool.for_table("tokens")._client.meta.region_name == "eu-west-2"
    transport = TokenClient.for_function("token-vendor")._transport
    assert transport._client.meta.region_name == "eu-west-2"  # type: ignore[attr-defined]


def test_cache_with_a_misspelt_region_is_exit_7(
    some_credentials: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-wst-2")

    assert cli.main(["cache", "status", "--table", "tokens"]) == 7
    assert "unknown AWS region 'eu-wst-2'" in _one_line(capsys)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("ExpiredTokenException", "credentials have expired"),
        ("UnrecognizedClientException", "refused the credentials"),
    ],
)
def test_refused_or_expired_credentials_on_function_are_exit_7(
    code: str, hint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError

    from token_client.transports import LambdaTransport

    class Lambda:
        def invoke(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": code, "Message": "The security token is expired"}}, "Invoke")

    transport = LambdaTransport("token-vendor", client=Lambda(), prove_identity=False)
    monkeypatch.setattr(
        TokenClient,
        "for_function",
        classmethod(lambda cls, f, **kw: TokenClient(transport, sleep=lambda s: None)),
    )

    assert cli.main(["--scope", "fr:idm:*", "--function", "token-vendor"]) == 7
    assert hint in _one_line(capsys)


@pytest.mark.parametrize("argv", [["--function", ""], ["--function", "no such"], ["--min-validity", "841"]])
def test_an_empty_or_malformed_function_and_an_out_of_range_validity_are_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    full = (
        ["--scope", "fr:idm:*", *argv]
        if argv[0] != "--min-validity"
        else ["--scope", "x", "--function", "f", *argv]
    )
    with pytest.raises(SystemExit) as exit_:
        cli.main(full)

    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("argv", [["--help"], ["exec", "--help"]])
def test_help_gives_min_validity_s_range(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(argv)

    assert "0 to 840" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scope", "x", "--function", "f"], "give the command after --"),
        (["--scope", "x", "--function", "f", "--"], "no command after --"),
        (["--scope", "x", "--function", "f", "--env", "1BAD", "--", "true"], "not an environment variable"),
    ],
)
def test_exec_bad_arguments_are_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["exec", *argv])

    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize(
    "region", ["eu-west-2", "cn-north-1", "us-gov-west-1", "eusc-de-east-1", "us-iso-east-1"]
)
def test_every_partition_s_regions_are_known(region: str) -> None:
    from token_client.regions import resolve_region

    assert resolve_region(region) == region
    assert resolve_region(None, environ={"AWS_DEFAULT_REGION": region}) == region
