"""Issue 4: HTTP callers through API Gateway (REST v1 and HTTP API v2 events)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from local.aic_standin import Fault
from local.lambda_context import LocalContext
from local.stack import LocalStack
from tests.leak_canary import FIGURES

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events"
POLICY = json.dumps({"arn:aws:iam::123456789012:role/reporting": ["fr:idm:*"]})


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@pytest.fixture
def http(function_env: Any) -> Any:
    from token_vendor import app

    function_env(CALLER_POLICY=POLICY)

    def call(event: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        response = app.http_handler(event, LocalContext())
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers.setdefault(name.lower(), values[-1])
        return response["statusCode"], headers, json.loads(response["body"])

    return call


def assert_no_store(headers: dict[str, str]) -> None:
    assert headers["cache-control"] == "no-store"
    assert headers["pragma"] == "no-cache"


def test_an_allowed_role_through_an_assumed_role_arn_gets_a_token(http: Any, fresh_stack: LocalStack) -> None:
    status, headers, body = http(load("rest_get.json"))

    assert status == 200
    assert headers["content-type"] == "application/json"
    assert_no_store(headers)
    assert body["scope"] == "fr:idm:*"
    assert body["token_type"] == "Bearer"
    assert fresh_stack.standin.exchanges == 1


def test_post_with_a_json_body(http: Any) -> None:
    status, headers, body = http(load("rest_post.json"))

    assert status == 200
    assert_no_store(headers)
    assert body["expires_in"] >= 300


def test_the_same_role_asking_for_one_more_scope_is_denied_without_an_exchange(
    http: Any, fresh_stack: LocalStack
) -> None:
    status, headers, body = http(load("bad/rest_get_scope_beyond_policy.json"))

    assert status == 403
    assert body["error"] == "access_denied"
    assert "fr:am:* fr:idm:*" in body["error_description"]
    assert_no_store(headers)
    assert fresh_stack.standin.token_requests == 0


def test_an_unknown_caller_is_denied(http: Any, fresh_stack: LocalStack) -> None:
    status, _, body = http(load("bad/rest_get_unknown_caller.json"))

    assert status == 403
    assert body["error"] == "access_denied"
    assert fresh_stack.standin.token_requests == 0


def test_the_default_policy_denies_every_http_caller(function_env: Any, http: Any) -> None:
    function_env(CALLER_POLICY="")
    status, _, _ = http(load("rest_get.json"))
    assert status == 403


def test_an_http_api_v2_event_works(http: Any) -> None:
    status, headers, body = http(load("http_api_v2.json"))

    assert status == 200
    assert_no_store(headers)
    assert body["scope"] == "fr:idm:*"


def test_http_api_v2_repeated_scopes_are_read_from_the_raw_query(function_env: Any, http: Any) -> None:
    function_env(CALLER_POLICY=json.dumps({"arn:aws:iam::123456789012:role/reporting": ["fr:*"]}))
    event = load("http_api_v2.json")
    event["rawQueryString"] = "scope=fr%3Aidm%3A%2A&scope=fr%3Aam%3A%2A"

    status, _, body = http(event)

    assert status == 200
    assert body["scope"] == "fr:am:* fr:idm:*"


BAD = sorted(p.name for p in (EVENTS / "bad").glob("*.json"))


@pytest.mark.parametrize("name", BAD)
def test_every_bad_event_gets_a_4xx_with_a_clear_description_and_no_exchange(
    http: Any, fresh_stack: LocalStack, name: str
) -> None:
    from token_vendor import app
    from token_vendor.kernel.errors import TokenVendorError

    FIGURES["bad_inputs"] += 1
    event = load(f"bad/{name}")
    if name.startswith("direct_"):
        with pytest.raises(TokenVendorError) as caught:
            app.lambda_handler(event, LocalContext())
        assert 400 <= caught.value.status < 500
        assert len(caught.value.message) > 10
    else:
        status, headers, body = http(event)
        assert 400 <= status < 500, body
        assert set(body) == {"error", "error_description"}
        assert len(body["error_description"]) > 10
        assert_no_store(headers)
    assert fresh_stack.standin.token_requests == 0


def test_methods_not_served_get_405_and_paths_not_served_404(http: Any) -> None:
    status, headers, body = http(load("bad/rest_delete_not_served.json"))
    assert (status, body["error"]) == (405, "method_not_allowed")
    assert headers["allow"] == "GET, POST"

    status, _, body = http(load("bad/rest_get_unknown_path.json"))
    assert (status, body["error"]) == (404, "not_found")


def test_aic_down_with_nothing_cached_is_503_with_retry_after(http: Any, fresh_stack: LocalStack) -> None:
    # AIC asks for 30 s, more than this invocation has left: the vendor stops at once and passes it on.
    fresh_stack.standin.set_sticky_fault(Fault("status", status=503, retry_after="30"))

    status, headers, body = http(load("rest_get.json"))

    assert status == 503
    assert body["error"] == "temporarily_unavailable"
    assert headers["retry-after"] == "30"
    assert_no_store(headers)
    assert fresh_stack.standin.token_requests == 1


def test_upstream_rejection_is_502_with_its_code(
    function_env: Any, http: Any, fresh_stack: LocalStack
) -> None:
    function_env(CALLER_POLICY=json.dumps({"arn:aws:iam::123456789012:role/reporting": ["*"]}))
    event = copy.deepcopy(load("rest_get.json"))
    event["multiValueQueryStringParameters"] = {"scope": ["fr:iga:*"]}

    status, _, body = http(event)

    assert status == 502
    assert body["error"] == "upstream_rejected"
    assert "fr:iga:*" in body["error_description"]


def test_a_configuration_error_is_500_without_internals(function_env: Any, http: Any) -> None:
    function_env(TOKEN_CACHE_TABLE="x y")

    status, headers, body = http(load("rest_get.json"))

    assert status == 500
    assert body["error"] == "server_error"
    # The HTTP caller learns nothing of the configuration; the request id leads operators to the log line.
    assert "TOKEN_CACHE_TABLE" not in body["error_description"]
    assert "request id" in body["error_description"]
    assert "Traceback" not in json.dumps(body)
    assert_no_store(headers)


def test_an_unexpected_error_is_500_without_internals(http: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from token_vendor.vend import vending

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail /var/task/vending.py")

    monkeypatch.setattr(vending.TokenVendor, "vend", explode)
    status, _, body = http(load("rest_get.json"))

    assert status == 500
    assert body["error"] == "server_error"
    assert body["error_description"].startswith("the token vendor could not serve this request")
    assert "internal detail" not in body["error_description"]


def test_an_unexpected_error_on_direct_invocation_is_internal_error(
    invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from token_vendor.kernel.errors import InternalError
    from token_vendor.vend import vending

    monkeypatch.setattr(vending.TokenVendor, "vend", lambda *a, **k: 1 / 0)
    with pytest.raises(InternalError) as caught:
        invoke({"scope": "fr:idm:*"})
    assert "division" not in caught.value.message


def test_sample_direct_and_step_functions_events_work(invoke: Any) -> None:
    assert invoke(load("direct.json"))["scope"] == "fr:idm:*"
    assert invoke(load("step_functions.json"))["expires_in"] >= 600


def test_each_vend_writes_one_audit_line_with_its_metrics(
    http: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    http(load("rest_get.json"))
    http(load("rest_get.json"))
    http(load("bad/rest_get_unknown_caller.json"))

    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    audits = [r for r in lines if r.get("audit")]
    assert [a["outcome"] for a in audits] == ["ok", "ok", "AccessDenied"]
    minted, hit, refused = audits
    assert (minted["tier"], hit["tier"]) == ("minted", "memory")
    assert minted["caller"] == "arn:aws:sts::123456789012:assumed-role/reporting/reporting-job-7f3a"
    assert minted["scopes"] == ["fr:idm:*"]
    assert len(minted["token_fingerprint"]) == 12
    assert minted["jti"]
    assert hit["jti"] is None
    assert refused["caller"].endswith("assumed-role/intruder/x")
    assert "CALLER_POLICY" in refused["error"]
    # EMF: the metrics ride on the same line, declared under _aws.
    declared = {m["Name"] for d in minted["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Mints", "MintLatency"} <= declared
    assert minted["Mints"] == 1
    assert hit["MemoryHits"] == 1
    assert refused["AccessDenied"] == 1
    assert refused["Refused_AccessDenied"] == 1


def test_a_request_refused_before_any_vend_still_has_its_audit_outcome(
    http: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    http(load("bad/rest_get_unknown_path.json"))
    http(load("bad/rest_delete_not_served.json"))

    audits = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"level"')]
    assert [a["outcome"] for a in audits] == ["NotFound", "MethodNotAllowed"]
    assert audits[0]["HttpStatus_404"] == 1
    assert audits[1]["HttpStatus_405"] == 1


def test_a_function_url_event_is_served_by_the_same_front_under_the_same_policy(http: Any) -> None:
    """Issue 13: Lambda function URL events (payload 2.0, requestContext.authorizer.iam)."""
    status, headers, body = http(load("function_url.json"))

    assert status == 200
    assert body["scope"] == "fr:idm:*"
    assert_no_store(headers)
