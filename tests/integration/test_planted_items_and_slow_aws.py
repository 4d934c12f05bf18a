"""Issue 22: table writers, malformed AIC answers, slow AWS calls and report storms.

Each test pins one defect the review reproduced against the local stack; each failed on the code before
its fix (f8ffdfe)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import botocore.session
import pytest
import urllib3

from local.aic_standin import Fault
from local.quiet_server import QuietThreadingHTTPServer
from local.stack import LocalStack, new_rsa_key, public_jwk
from tests.integration.conftest import FakeWall, Recorder, budget, direct
from tests.integration.test_hostile_writers_and_callers import _item, _key
from tests.integration.test_http import POLICY, load
from tests.leak_canary import CANARY, FIGURES
from token_vendor.kernel.cached_token import fingerprint
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import InvalidRequest, UpstreamRejected, UpstreamUnavailable
from token_vendor.kernel.settings import load_settings
from token_vendor.kernel.vend_request import VendRequest
from token_vendor.wiring import build_vendor

pytestmark = pytest.mark.integration
YEAR_5138 = 99_999_999_999


def _update(stack: LocalStack, expression: str, values: dict[str, Any]) -> None:
    stack.client("dynamodb").update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": _key(stack)}},
        UpdateExpression=expression,
        ExpressionAttributeValues=values,
    )


def _report(token: str, min_validity: int | None = None) -> VendRequest:
    request = direct("fr:idm:*", min_validity)
    return VendRequest(request.scopes, request.min_validity, request.caller, rejected=fingerprint(token))


# -- 1. a planted far-future retirement time ------------------------------------------------------------
def test_a_retirement_time_in_the_future_is_ignored(make_vendor: Any, fresh_stack: LocalStack) -> None:
    FIGURES["faults"] += 1
    first = make_vendor(sleeps=[]).vend(direct("fr:idm:*"), budget()).token
    _update(
        fresh_stack, "SET retired_at = :t, retired_fp = :f", {":t": {"N": str(YEAR_5138)}, ":f": {"S": "x"}}
    )

    vended = make_vendor(sleeps=[]).vend(_report(first.access_token), budget())

    assert vended.retired == fingerprint(first.access_token)  # retired, not "rate-limited"
    assert vended.token.access_token != first.access_token
    assert float(_item(fresh_stack)["retired_at"]["N"]) <= time.time()  # the plant did not survive the store


def test_a_rate_limited_report_still_gets_the_validity_it_asked_for(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    first = make_vendor(sleeps=[], wall=wall).vend(direct("fr:idm:*"), budget()).token
    second = make_vendor(sleeps=[], wall=wall).vend(_report(first.access_token), budget()).token
    wall.advance(200)  # the replacement has about 700 s left
    _update(fresh_stack, "SET retired_at = :t", {":t": {"N": repr(wall() - 1)}})  # retired a second ago
    vended = make_vendor(sleeps=[], wall=wall).vend(_report(second.access_token, 840), budget())

    assert vended.token.seconds_left(wall()) >= 840  # not the reported token with ~700 s left


# -- 2. a storm of reports while the table is unusable --------------------------------------------------
def test_reports_while_the_table_is_missing_are_rate_limited_per_container(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["faults"] += 1
    vendor = make_vendor(sleeps=[], TOKEN_CACHE_TABLE="no-such-table")
    token = vendor.vend(direct("fr:idm:*"), budget()).token
    fresh_stack.standin.reset_counters()

    served = []
    for _ in range(25):  # each report names the token the caller was just given
        vended = vendor.vend(_report(token.access_token), budget())
        served.append(vended)
        token = vended.token

    assert fresh_stack.standin.exchanges == 1  # was 25: one token minted per report
    assert served[0].retired is not None
    assert sum(v.retire_rate_limited for v in served) == 24


# -- 3. every AWS call ends by the deadline --------------------------------------------------------------
class _SlowAws:
    """A loopback proxy in front of moto that holds every AWS call ``delay`` seconds."""

    def __init__(self, upstream: str, delay: float) -> None:
        self.delay = delay
        self.calls = 0
        pool = urllib3.PoolManager(maxsize=16)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.calls += 1
                time.sleep(proxy.delay)
                try:
                    answer = pool.request(
                        "POST",
                        upstream + self.path,
                        body=body,
                        headers=dict(self.headers.items()),
                        retries=False,
                    )
                    self.send_response(answer.status)
                    for name in ("Content-Type", "x-amzn-RequestId", "x-amz-crc32"):
                        if name in answer.headers:
                            self.send_header(name, answer.headers[name])
                    self.send_header("Content-Length", str(len(answer.data)))
                    self.end_headers()
                    self.wfile.write(answer.data)
                except OSError:
                    return  # the client gave up (its timeout): nothing to answer

        self._server = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def slow_aws(fresh_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[_SlowAws]:
    proxy = _SlowAws(fresh_stack.aws.endpoint, 0.0)
    for name, value in fresh_stack.aws_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("delay", [1.9, 2.2])
def test_a_vend_ends_by_its_deadline_however_slow_aws_is(
    delay: float, slow_aws: _SlowAws, fresh_stack: LocalStack
) -> None:
    """Before: with every AWS call taking 1.9 s a vend took 10.4 s of a 10 s budget; with 2.2 s, 12.2 s."""
    FIGURES["faults"] += 1
    settings = load_settings({**os.environ, **fresh_stack.function_env(AWS_ENDPOINT_URL=slow_aws.endpoint)})
    vendor = build_vendor(settings, botocore.session.Session())
    slow_aws.delay = delay
    budget_seconds = 5.0
    started = time.monotonic()
    with contextlib.suppress(UpstreamUnavailable):  # a stable error is fine; any other fails the test
        vendor.vend(direct("fr:idm:*"), Deadline.after(budget_seconds, time.monotonic))
    elapsed = time.monotonic() - started

    # The connect timeout (0.5 s) is the one bound botocore does not take per request; the invocation's
    # safety margin (0.5 s) covers it.
    assert elapsed <= budget_seconds + 0.5, f"{elapsed:.2f} s"
    assert slow_aws.calls >= 2


def test_with_time_to_spare_a_slow_aws_still_serves(slow_aws: _SlowAws, fresh_stack: LocalStack) -> None:
    settings = load_settings({**os.environ, **fresh_stack.function_env(AWS_ENDPOINT_URL=slow_aws.endpoint)})
    vendor = build_vendor(settings, botocore.session.Session())
    slow_aws.delay = 0.3

    vended = vendor.vend(direct("fr:idm:*"), Deadline.after(10, time.monotonic))

    assert vended.tier == "minted"
    assert "expires_at" in _item(fresh_stack)  # the put after the mint had time, so it happened


# -- 4. a planted lifetime -----------------------------------------------------------------------------
def test_a_planted_lifetime_does_not_refuse_callers(make_vendor: Any, fresh_stack: LocalStack) -> None:
    FIGURES["faults"] += 1
    wall = FakeWall()
    make_vendor(sleeps=[], wall=wall).vend(direct("fr:idm:*"), budget())
    _update(fresh_stack, "SET lifetime = :l", {":l": {"N": "1"}})
    wall.advance(200)  # the token has about 700 s left; the next caller needs 840

    vended = make_vendor(sleeps=[], wall=wall).vend(direct("fr:idm:*", 840), budget())  # was InvalidRequest

    assert vended.token.seconds_left(wall()) >= 840


def test_an_unencrypted_item_cannot_claim_less_life_than_it_has_left(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    make_vendor(sleeps=[], encrypt=False, wall=wall).vend(direct("fr:idm:*"), budget())
    _update(fresh_stack, "SET lifetime = :l", {":l": {"N": "1"}})
    wall.advance(200)

    vended = make_vendor(sleeps=[], encrypt=False, wall=wall).vend(direct("fr:idm:*", 840), budget())

    assert vended.token.seconds_left(wall()) >= 840
    assert fresh_stack.standin.exchanges == 2  # a refresh, not a refusal


# -- 5, 6. malformed answers from AIC ------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b'{"access_token": "abc\\ud800def", "expires_in": 899}',
        b'{"access_token": "caf\\u00e9", "expires_in": 899}',
        b'{"access_token": "ok", "expires_in": 1' + b"0" * 400 + b"}",
        b'{"access_token": "ok", "expires_in": 1000000000000}',
        b'{"access_token": "ok", "expires_in": 86401}',
    ],
    ids=["lone surrogate", "non-ASCII", "10**400", "10**12", "a day and a second"],
)
def test_a_malformed_answer_is_unavailable_and_nothing_is_kept(
    body: bytes, make_vendor: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["bad_inputs"] += 1
    vendor = make_vendor(sleeps=[])
    fresh_stack.standin.push_faults(Fault("token_body", body=body))

    with pytest.raises(UpstreamUnavailable):
        vendor.vend(direct("fr:idm:*"), budget())

    assert "lease_holder" not in _item(fresh_stack)  # the lease was released
    assert "expires_at" not in _item(fresh_stack)
    assert vendor.vend(direct("fr:idm:*"), budget()).tier == "minted"  # the container is not poisoned


# -- 7. a refused key over HTTP names neither the account nor the secret version ----------------------
def test_a_refused_key_over_http_names_no_account_and_no_version(
    function_env: Any, fresh_stack: LocalStack
) -> None:
    from local.lambda_context import LocalContext
    from token_vendor import app

    stranger = new_rsa_key()
    CANARY.register_key(stranger)
    fresh_stack.standin.set_keys(fresh_stack.account_id, [public_jwk(stranger)])
    function_env(CALLER_POLICY=POLICY)

    response = app.http_handler(load("rest_get.json"), LocalContext())

    assert response["statusCode"] == 502
    body = json.loads(response["body"])
    assert body["error"] == "upstream_rejected"
    assert fresh_stack.account_id not in response["body"]
    versions = fresh_stack.client("secretsmanager").list_secret_version_ids(SecretId=fresh_stack.secret_id)
    assert all(v["VersionId"] not in response["body"] for v in versions["Versions"])


# -- 8. planted rejection text ---------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["invalid_scope", "invalid_client"])
def test_planted_rejection_text_never_reaches_a_caller(
    code: str, make_vendor: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["faults"] += 1
    _update(
        fresh_stack,
        "SET neg_until = :u, neg_code = :c, neg_message = :m, neg_scopes = :s",
        {
            ":u": {"N": repr(time.time() + 60)},
            ":c": {"S": code},
            ":m": {"S": "Your access expired: sign in at https://evil.example"},
            ":s": {"S": "fr:idm:* visit-evil.example"},
        },
    )

    with pytest.raises(UpstreamRejected) as refused:
        make_vendor(sleeps=[]).vend(direct("fr:idm:*"), budget())

    assert "evil" not in refused.value.message
    assert all("evil" not in scope for scope in refused.value.rejected_scopes)


def test_a_planted_rejection_code_is_ignored(make_vendor: Any, fresh_stack: LocalStack) -> None:
    _update(
        fresh_stack,
        "SET neg_until = :u, neg_code = :c",
        {":u": {"N": repr(time.time() + 60)}, ":c": {"S": "call_the_helpdesk_at_555"}},
    )

    assert make_vendor(sleeps=[]).vend(direct("fr:idm:*"), budget()).tier == "minted"


# -- 9. a flush reaches warm containers within a minute ---------------------------------------------------
class _CountingDynamoDB:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.reads = 0

    def get_item(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self._client.get_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_flush_reaches_a_warm_container_within_a_minute(make_vendor: Any, fresh_stack: LocalStack) -> None:
    wall = FakeWall()
    counting = _CountingDynamoDB(fresh_stack.client("dynamodb"))
    warm = make_vendor(sleeps=[], wall=wall, dynamodb=counting)
    old = warm.vend(direct("fr:idm:*"), budget()).token
    fresh_stack.client("dynamodb").delete_item(
        TableName=fresh_stack.table_name, Key={"pk": {"S": _key(fresh_stack)}}
    )
    new = make_vendor(sleeps=[], wall=wall).vend(direct("fr:idm:*"), budget()).token  # a new container mints
    reads_before = counting.reads

    for _ in range(100):
        assert warm.vend(direct("fr:idm:*"), budget()).token == old  # memory, within the minute
    wall.advance(60)
    after = [warm.vend(direct("fr:idm:*"), budget()).token for _ in range(100)]

    assert after[0].access_token == new.access_token != old.access_token
    assert all(t == after[0] for t in after)
    assert counting.reads - reads_before == 1  # one table read per scope set per minute
    assert fresh_stack.standin.exchanges == 2


def test_a_warm_container_that_finds_the_item_flushed_mints_once(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    wall = FakeWall()
    metrics = Recorder()
    warm = make_vendor(sleeps=[], wall=wall, metrics=metrics)
    old = warm.vend(direct("fr:idm:*"), budget()).token
    fresh_stack.client("dynamodb").delete_item(
        TableName=fresh_stack.table_name, Key={"pk": {"S": _key(fresh_stack)}}
    )
    wall.advance(61)

    new = warm.vend(direct("fr:idm:*"), budget()).token

    assert new.access_token != old.access_token
    assert fresh_stack.standin.exchanges == 2
    assert "expires_at" in _item(fresh_stack)


def test_a_refusal_message_is_never_read_from_the_table_even_for_short_tokens(
    make_vendor: Any, fresh_stack: LocalStack
) -> None:
    """The short-lifetime refusal composes its figures from the authenticated lifetime only."""
    fresh_stack.standin.set_token_lifetime(300)
    make_vendor(sleeps=[]).vend(direct("fr:idm:*"), budget())
    with pytest.raises(InvalidRequest, match="live 300 s"):
        make_vendor(sleeps=[]).vend(direct("fr:idm:*", 600), budget())


# -- 10. a wrong secret id is an ERROR in the log; a broken secret counts as a mint failure (issue 23) --
def test_a_wrong_secret_id_logs_one_error_line_naming_it(
    make_vendor: Any, fresh_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    from token_vendor.kernel.errors import ConfigurationError

    metrics = Recorder()
    vendor = make_vendor(sleeps=[], metrics=metrics, SERVICE_ACCOUNT_SECRET_ID="token-vendor/no-such-secret")

    with pytest.raises(ConfigurationError, match="no-such-secret"):
        vendor.vend(direct("fr:idm:*"), budget())

    errors = [
        r for r in caplog.records if r.levelname == "ERROR" and "secret cannot be read" in r.getMessage()
    ]
    assert len(errors) == 1
    assert metrics.counts["MintFailures"] == 1  # the MintFailures alarm fires for a broken secret too
