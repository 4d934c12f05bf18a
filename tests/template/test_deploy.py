"""Issue 32: what the transformed template deploys - schedule names, layer retention, reserved concurrency,
where alarms go, and a dashboard that follows the HTTP front."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.docs.pages import page_text
from tests.template.iam_model import ACCOUNT, REGION, Stack

REPO = Path(__file__).resolve().parents[2]
MAX_SCHEDULE_NAME = 64  # EventBridge Scheduler: Name, 1-64 characters


def test_the_schedule_name_fits_for_any_stack_name(variants: dict[str, dict[str, Any]]) -> None:
    """A CloudFormation stack name may be 128 characters; a schedule named after it failed past 54."""
    for variant, template in variants.items():
        stack = Stack(template)
        for name, schedule in stack.resources("AWS::Scheduler::Schedule").items():
            given = schedule["Properties"].get("Name")
            if given is None:
                continue  # CloudFormation generates a unique name within the limit
            long_stack = "s" * 128
            resolved = str(stack.resolve(given)).replace(stack.resolve({"Ref": "AWS::StackName"}), long_stack)
            assert len(resolved) <= MAX_SCHEDULE_NAME, (variant, name, resolved)


def test_only_the_consumers_layer_outlives_the_stack(variants: dict[str, dict[str, Any]]) -> None:
    """The vendor's own dependencies go with the stack and with each new version; consumers pin the
    client layer's version ARN, so its versions stay, and docs/deploy.md says so."""
    for template in variants.values():
        layers = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion"}
        policy = {re.sub(r"[0-9a-f]{10}$", "", n): r.get("DeletionPolicy") for n, r in layers.items()}
        assert policy == {"DependenciesLayer": "Delete", "TokenClientLayer": "Retain"}
    deploy_page = (REPO / "docs" / "deploy.md").read_text()
    survives = deploy_page[deploy_page.index("What survives `sam delete`") :][:1500]
    assert "TokenClientLayer" in survives


def test_reserved_concurrency_says_what_it_really_reserves(variants: dict[str, dict[str, Any]]) -> None:
    template = variants["account"]
    reserved = {
        name: Stack(template).resolve(r["Properties"].get("ReservedConcurrentExecutions"))
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function" and name != "KeyRotationFunction"
    }
    assert reserved == {"TokenVendorFunction": "20", "TokenApiFunction": "20"}  # N each: 2N in all
    description = template["Parameters"]["ReservedConcurrency"]["Description"]
    assert "2N in all" in description
    assert "2N + 100" in description
    pages = page_text()
    assert "N + 100" not in pages.replace("2N + 100", "")


def _actions(stack: Stack) -> set[str]:
    alarms = stack.resources("AWS::CloudWatch::Alarm").values()
    return {
        json.dumps(stack.resolve(a["Properties"].get("AlarmActions", {"Ref": "AWS::NoValue"})))
        for a in alarms
    }


def test_alarms_reach_a_person(variants: dict[str, dict[str, Any]]) -> None:
    """An e-mail address alone gets a topic and a subscription; a topic given is used as it is; and the
    dead-letter queue of the scheduled refresh has its alarm."""
    emailed = Stack(variants["alarm-email"])
    topic = emailed.arn("AlarmTopic")
    assert _actions(emailed) == {json.dumps([topic])}
    subscriptions = list(emailed.resources("AWS::SNS::Subscription").values())
    assert [emailed.resolve(s["Properties"]) for s in subscriptions] == [
        {"TopicArn": topic, "Protocol": "email", "Endpoint": "oncall@example.com"}
    ]
    given = Stack(variants["alarm-topic"])
    assert _actions(given) == {json.dumps([f"arn:aws:sns:{REGION}:{ACCOUNT}:platform-alarms"])}
    assert not given.resources("AWS::SNS::Topic")
    assert "RefreshDeadLetterAlarm" in given.resources("AWS::CloudWatch::Alarm")


def _dashboard(template: dict[str, Any]) -> set[tuple[str, str, str]]:
    stack = Stack(template)
    body = json.loads(
        stack.resolve(template["Resources"]["TokenVendorDashboard"]["Properties"]["DashboardBody"])
    )
    return {(m[0], m[1], m[3]) for w in body["widgets"] for m in w["properties"]["metrics"]}


def test_the_dashboard_follows_the_front_that_is_deployed(variants: dict[str, dict[str, Any]]) -> None:
    api_function = "TokenApiFunction"  # Ref of a function: its name, which Stack resolves to a test name
    for front in ("rest-api", "function-url", "none"):
        template = variants[f"front-{front}"]
        shown = _dashboard(template)
        api_name = Stack(template).physical_id(api_function)
        namespaces = {(ns, metric) for ns, metric, _ in shown}
        assert (("AWS/ApiGateway", "5XXError") in namespaces) == (front == "rest-api"), front
        assert (("AWS/Lambda", "Url5xxCount") in namespaces) == (front == "function-url"), front
        for metric in ("Duration", "Throttles", "Errors"):  # the HTTP function's own Lambda metrics
            assert ("AWS/Lambda", metric, api_name) in shown, (front, metric)
