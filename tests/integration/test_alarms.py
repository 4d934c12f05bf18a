"""Issue 32: every alarm in the template watches a metric that really moves when its trouble happens.

Each alarm is driven through the handlers in-process (the local stack: moto and the AIC stand-in), with the
audit lines captured: an EMF metric must carry the alarm's Namespace, MetricName and Dimensions, and reach
its Threshold. AWS's own metrics come from what the service counts: Url5xxCount and API Gateway's 5XXError
from the status the function answers, the dead-letter queue's depth from its messages. Lambda's Throttles
cannot happen in-process; for those the alarm must name the function by its own reference.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from local.aic_standin import Fault
from local.aws import load_template
from local.lambda_context import LocalContext
from local.stack import LocalStack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
TEMPLATE = load_template(REPO / "template.yaml")
POLICY = json.dumps({"arn:aws:iam::123456789012:role/reporting": ["fr:idm:*"]})
Env = Callable[..., dict[str, str]]


def _alarms() -> dict[str, dict[str, Any]]:
    return {
        name: r["Properties"]
        for name, r in TEMPLATE["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def _emf(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def _moved(records: list[dict[str, Any]], alarm: dict[str, Any]) -> float:
    """The alarm's statistic over the captured EMF records that match its namespace and dimensions."""
    wanted = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    total = 0.0
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            names = {m["Name"] for m in directive["Metrics"]}
            dimensions = {d for group in directive["Dimensions"] for d in group}
            if (
                directive["Namespace"] == alarm["Namespace"]
                and alarm["MetricName"] in names
                and dimensions == set(wanted)
                and all(record.get(k) == v for k, v in wanted.items())
            ):
                values = record[alarm["MetricName"]]
                total += sum(values) if isinstance(values, list) else values
    return total


def _aic_down(stack: LocalStack) -> None:
    stack.standin.set_sticky_fault(Fault("status", status=503))


def _http(event: dict[str, Any]) -> dict[str, Any]:
    from token_vendor import app

    result: dict[str, Any] = app.http_handler(event, LocalContext())
    return result


def _direct(event: dict[str, Any]) -> None:
    from token_vendor import app

    # A refusal is what these movers provoke; its audit line is what counts.
    with contextlib.suppress(Exception):
        app.lambda_handler(event, LocalContext())


def _throttled_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DynamoDB call answers ThrottlingException (a transient outage, not a misconfiguration)."""
    from token_vendor import wiring as runtime

    class Throttled:
        status_code = 400

    def answer(**kwargs: Any) -> tuple[Any, dict[str, Any]]:
        error = {"Code": "ThrottlingException", "Message": "Rate of requests exceeds the allowed throughput."}
        return Throttled(), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    def session() -> botocore.session.Session:
        made = botocore.session.Session()
        made.register("before-call.dynamodb", answer)
        return made

    monkeypatch.setattr(runtime.botocore.session, "get_session", session)


def _move(name: str, env: Env, stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Provoke the trouble alarm ``name`` watches, through the handlers."""
    if name == "CacheMisconfiguredAlarm":
        env(TOKEN_CACHE_TABLE="no-such-table")
        _direct({"scope": "fr:idm:*"})
    elif name == "CacheUnavailableAlarm":
        _throttled_table(monkeypatch)
        env()
        _direct({"scope": "fr:idm:*"})
    elif name == "MintFailuresAlarm":
        _aic_down(stack)
        _direct({"scope": "fr:idm:*"})
    elif name == "ScheduledRefreshFailuresAlarm":
        stack.standin.set_token_lifetime(
            170
        )  # served (>= MIN_VALIDITY 120 s), due (< 120 s + the minute ahead)
        _direct({"scope": "fr:idm:*"})
        _aic_down(stack)
        _direct({"refresh": "due"})
    elif name == "ConfigurationErrorAlarm":
        env(CALLER_POLICY=POLICY, SERVICE_ACCOUNT_SECRET_ID=stack.secret_id + "-missing")
        _http(_event("rest_get.json"))
        _direct({"scope": "fr:idm:*"})
    elif name == "InternalErrorAlarm":
        from token_vendor.vend import vending

        monkeypatch.setattr(vending.TokenVendor, "vend", lambda *a, **k: 1 / 0)
        env(CALLER_POLICY=POLICY)
        assert _http(_event("rest_get.json"))["statusCode"] == 500  # the HTTP front (issue 32)
        assert _http(_event("function_url.json"))["statusCode"] == 500
    else:
        raise AssertionError(f"no mover for {name}")


VENDOR_METRIC_ALARMS = sorted(n for n, a in _alarms().items() if a["Namespace"] == "TokenVendor")


@pytest.mark.parametrize("name", VENDOR_METRIC_ALARMS)
def test_each_vendor_metric_alarm_reaches_its_threshold(
    name: str,
    function_env: Env,
    fresh_stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alarm = _alarms()[name]
    capsys.readouterr()
    try:
        _move(name, function_env, fresh_stack, monkeypatch)
    finally:
        fresh_stack.standin.set_sticky_fault(None)
        fresh_stack.standin.reset_counters()
    assert _moved(_emf(capsys.readouterr().out), alarm) >= alarm["Threshold"], name


def test_http_5xx_alarms_count_what_the_function_answers(function_env: Env, fresh_stack: LocalStack) -> None:
    """Url5xxCount (function URL) and 5XXError (REST API) count the 5xx the function returns: with AIC down
    and nothing cached, each front answers 503, enough times in a period to reach each threshold."""
    alarms = _alarms()
    function_env(CALLER_POLICY=POLICY)
    _aic_down(fresh_stack)
    try:
        for alarm_name, event_name in (
            ("FunctionUrl5xxAlarm", "function_url.json"),
            ("Api5xxAlarm", "rest_get.json"),
        ):
            alarm = alarms[alarm_name]
            statuses = [
                _http(copy.deepcopy(_event(event_name)))["statusCode"] for _ in range(int(alarm["Threshold"]))
            ]
            assert all(500 <= s <= 599 for s in statuses), (alarm_name, statuses)
    finally:
        fresh_stack.standin.set_sticky_fault(None)
    assert alarms["FunctionUrl5xxAlarm"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "TokenApiFunction"}}
    ]
    api_name = TEMPLATE["Resources"]["TokenApi"]["Properties"]["Name"]
    assert alarms["Api5xxAlarm"]["Dimensions"] == [{"Name": "ApiName", "Value": api_name}]


def test_the_dead_letter_alarm_watches_the_schedules_queue(fresh_stack: LocalStack) -> None:
    """A message Scheduler could not deliver makes the queue's visible count 1: the alarm's threshold."""
    alarm = _alarms()["RefreshDeadLetterAlarm"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": "RefreshDeadLetterQueue.QueueName"}}
    ]
    dead_letter = TEMPLATE["Resources"]["TokenVendorFunction"]["Properties"]["Events"]["KeepWarm"][
        "Properties"
    ]
    assert dead_letter["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": "RefreshDeadLetterQueue.Arn"}}
    sqs = fresh_stack.client("sqs")
    url = sqs.create_queue(QueueName="refresh-dead-letters")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody='{"refresh": "due"}')
    visible = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert int(visible["Attributes"]["ApproximateNumberOfMessages"]) >= alarm["Threshold"]


def test_throttle_alarms_name_each_function_by_its_own_reference() -> None:
    """Lambda counts Throttles itself (no in-process way to make it move): each alarm names its function."""
    alarms = _alarms()
    watched = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms.values() if a["MetricName"] == "Throttles"}
    assert watched == {"TokenVendorFunction", "TokenApiFunction"}


def test_every_alarm_has_a_test_here_and_notifies_the_same_target() -> None:
    covered = set(VENDOR_METRIC_ALARMS) | {
        "FunctionUrl5xxAlarm", "Api5xxAlarm", "RefreshDeadLetterAlarm",
        "VendorThrottlesAlarm", "ApiThrottlesAlarm",
    }  # fmt: skip
    assert set(_alarms()) == covered
    actions = {json.dumps(a["AlarmActions"], sort_keys=True) for a in _alarms().values()}
    assert len(actions) == 1, actions
