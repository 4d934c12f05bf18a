"""The consumer client: caching, refresh-ahead, stale-on-error, error mapping and the CLI's exit codes."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import token_client.__main__ as cli
from token_client import (
    AccessDenied,
    InvalidScope,
    TokenClient,
    TransportError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from token_client.client import fingerprint
from token_client.transports import _http_error


class FakeTransport:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[tuple[str, ...], int | None, str | None]] = []

    def fetch(
        self, scopes: tuple[str, ...], min_validity: int | None, rejected: str | None = None
    ) -> dict[str, Any]:
        self.calls.append((scopes, min_validity, rejected))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def token(expires_at: float, value: str = "t" * 24) -> dict[str, Any]:
    return {"access_token": value, "expires_at": expires_at, "scope": "fr:idm:*"}


def test_tokens_are_cached_per_normalised_scope_set() -> None:
    transport = FakeTransport(token(2000.0))
    client = TokenClient(transport, clock=lambda: 1000.0)

    client.get_token("fr:idm:* fr:am:*")
    client.get_token(["fr:am:*", "fr:idm:*"])

    assert transport.calls == [(("fr:am:*", "fr:idm:*"), 60, None)]


def test_refresh_ahead_and_stale_on_error() -> None:
    now = [1000.0]
    transport = FakeTransport(token(1200.0, "a" * 24), UpstreamUnavailable("down"))
    client = TokenClient(transport, clock=lambda: now[0], sleep=lambda s: None, refresh_ahead=120)
    first = client.get_token("fr:idm:*")
    now[0] = 1100.0  # 100 s left: inside refresh-ahead, still above the 60 s minimum

    assert client.get_token("fr:idm:*") == first  # the refresh failed; the cached token still serves
    assert len(transport.calls) == 4  # the first fetch, then three attempts at the refresh

    now[0] = 1150.0  # 50 s left: below the minimum, nothing to fall back on
    with pytest.raises(UpstreamUnavailable):
        client.get_token("fr:idm:*")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "invalid_scope", "error_description": "scope #1 …"}, InvalidScope),
        (403, {"error": "access_denied", "error_description": "no"}, AccessDenied),
        (403, {"message": "The request signature we calculated does not match"}, AccessDenied),
        (502, {"error": "upstream_rejected", "error_description": "invalid_grant"}, UpstreamRejected),
        (503, {"error": "temporarily_unavailable", "error_description": "down"}, UpstreamUnavailable),
        (504, None, UpstreamUnavailable),
        (418, None, TransportError),
    ],
)
def test_http_answers_map_to_the_services_error_names(status: int, body: Any, expected: type) -> None:
    assert isinstance(_http_error(status, body, "7"), expected)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidScope("bad scope"), 3),
        (AccessDenied("no"), 4),
        (UpstreamRejected("x"), 5),
        (UpstreamUnavailable("down"), 6),
        (TransportError("net"), 6),
    ],
)
def test_cli_exit_codes_and_one_line_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception, code: int
) -> None:
    transport = FakeTransport(error)
    monkeypatch.setattr(
        TokenClient,
        "for_url",
        classmethod(lambda cls, url, **kw: TokenClient(transport, sleep=lambda s: None)),
    )

    assert cli.main(["--scope", "fr:idm:*", "--url", "https://api.example/v1/token"]) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"aic-token: {type(error).__name__}: ")


def test_cli_prints_the_token_or_the_header(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = FakeTransport(token(4102444800.0, "z" * 30))
    monkeypatch.setattr(
        TokenClient, "for_function", classmethod(lambda cls, name, **kw: TokenClient(transport))
    )

    assert cli.main(["--scope", "fr:idm:*", "--function", "vendor"]) == 0
    assert capsys.readouterr().out == "z" * 30 + "\n"
    assert cli.main(["--scope", "fr:idm:*", "--function", "vendor", "--header"]) == 0
    assert capsys.readouterr().out == "Authorization: Bearer " + "z" * 30 + "\n"


def test_cli_rejects_missing_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--scope", "fr:idm:*"])
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abc123.execute-api.eu-west-2.amazonaws.com/v1/token", "eu-west-2"),
        ("https://abc123-vpce-0a1b2c3d.execute-api.us-east-1.amazonaws.com/v1/token", "us-east-1"),
        ("https://tokens.example.com/v1/token", None),
        ("http://127.0.0.1:8080/v1/token", None),
    ],
)
def test_the_signing_region_comes_from_an_execute_api_host(url: str, region: str | None) -> None:
    from token_client.transports import region_of

    assert region_of(url) == region


@pytest.mark.parametrize(
    "argv",
    [
        ["--scope", "x", "--url", "notaurl"],
        ["--scope", "x", "--url", "http://api.example.com/v1/token"],
        ["--scope", "x", "--function", "arn:aws:lambda:eu-west-2:12:function:f"],
        ["--scope", "x", "--function", "no spaces allowed"],
        ["--scope", "x", "--function", "f", "--rejected", "ABCDEF012345"],
        ["--scope", "x", "--function", "f", "--min-validity", "\u00b2"],
        ["--scope", "x", "--function", "f", "--header", "--json"],
        ["--scope", "x"],
        ["cache", "flush", "--table", "t"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("aic-token: error: ")
    assert "Traceback" not in err


def test_cli_json_repeated_scopes_and_a_rejected_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = FakeTransport(token(4102444800.0, "z" * 30))
    monkeypatch.setattr(
        TokenClient, "for_function", classmethod(lambda cls, name, **kw: TokenClient(transport))
    )

    assert cli.main(["--scope", "fr:idm:*", "--scope", "fr:am:*", "--function", "vendor", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["access_token"] == "z" * 30
    assert document["fingerprint"] == fingerprint("z" * 30)
    assert transport.calls[-1][0] == ("fr:am:*", "fr:idm:*")
    assert cli.main(["--scope", "fr:idm:*", "--function", "vendor", "--rejected", "0123456789ab"]) == 0
    assert transport.calls[-1][2] == "0123456789ab"


def test_retire_reports_the_token_drops_it_and_returns_the_fresh_one() -> None:
    transport = FakeTransport(token(2000.0, "old" * 10), token(2000.0, "new" * 10))
    client = TokenClient(transport, clock=lambda: 1000.0)
    old = client.get_token("fr:idm:*")

    fresh = client.retire("fr:idm:*", old)

    assert fresh.access_token == "new" * 10
    assert transport.calls[-1][2] == fingerprint("old" * 10)
    assert client.get_token("fr:idm:*").access_token == "new" * 10  # the cache dropped the retired one


def test_threads_reporting_the_same_token_cause_one_call_to_the_vendor() -> None:
    transport = FakeTransport(token(2000.0, "old" * 10), token(2000.0, "new" * 10))
    client = TokenClient(transport, clock=lambda: 1000.0)
    old = client.get_token("fr:idm:*")
    barrier = threading.Barrier(16)
    fresh: list[str] = []

    def report() -> None:
        barrier.wait()
        fresh.append(client.retire("fr:idm:*", old).access_token)

    threads = [threading.Thread(target=report) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)

    assert set(fresh) == {"new" * 10}
    assert len(transport.calls) == 2  # the first get, and one report


class Response:
    def __init__(self, status: int, header: str) -> None:
        self.status = status
        self.header = header


def test_call_retries_once_after_a_401_with_the_fresh_token() -> None:
    transport = FakeTransport(token(2000.0, "old" * 10), token(2000.0, "new" * 10))
    client = TokenClient(transport, clock=lambda: 1000.0)
    seen: list[str] = []

    def request(header: str) -> Response:
        seen.append(header)
        return Response(401 if "old" in header else 200, header)

    response = client.call("fr:idm:*", request)

    assert response.status == 200
    assert seen == ["Bearer " + "old" * 10, "Bearer " + "new" * 10]
    assert transport.calls[-1][2] == fingerprint("old" * 10)
