"""Issue 37: SnapStart is a template parameter; with it on, everything that invokes a vending function
invokes its published alias (SnapStart applies to published versions only, never to $LATEST)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local.aws import load_template

REPO = Path(__file__).resolve().parents[2]
VENDING = ("TokenVendorFunction", "TokenApiFunction")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO / "template.yaml")


def _with(node: Any, snapstart: bool) -> Any:
    """``node`` with every ``Fn::If`` on WithSnapStart decided."""
    if isinstance(node, list):
        return [_with(item, snapstart) for item in node]
    if not isinstance(node, dict):
        return node
    if list(node) == ["Fn::If"] and node["Fn::If"][0] == "WithSnapStart":
        return _with(node["Fn::If"][1 if snapstart else 2], snapstart)
    return {key: _with(value, snapstart) for key, value in node.items()}


def test_snapstart_is_off_by_default_and_takes_the_values_lambda_takes(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["SnapStart"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("None", ["None", "PublishedVersions"])
    assert template["Conditions"]["WithSnapStart"] == {
        "Fn::Equals": [{"Ref": "SnapStart"}, "PublishedVersions"]
    }


def test_both_vending_functions_publish_an_alias_with_snapstart_as_the_parameter_says(
    template: dict[str, Any],
) -> None:
    for name in VENDING:
        properties = template["Resources"][name]["Properties"]
        assert properties["AutoPublishAlias"] == "live"
        assert properties["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
        assert properties["VersionDeletionPolicy"] == "Delete"  # no replaced version keeps a cached snapshot
    assert "SnapStart" not in template["Resources"]["KeyRotationFunction"]["Properties"]
    assert (template["Globals"]["Function"]["Runtime"], template["Globals"]["Function"]["Architectures"]) == (
        "python3.13",
        ["arm64"],
    )  # SnapStart supports Python 3.12 and later, on arm64 as on x86_64


def _pointers(variant: dict[str, Any]) -> dict[str, Any]:
    resources = variant["Resources"]
    schedule = next(r for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule")
    return {
        "schedule": schedule["Properties"]["Target"]["Arn"],
        "api": resources["TokenApi"]["Properties"]["Body"]["paths"]["/token"]["get"][
            "x-amazon-apigateway-integration"
        ]["uri"]["Fn::Sub"][1]["Target"],
        "api permission": resources["TokenApiInvokePermission"]["Properties"]["FunctionName"],
        "state machine": resources["SampleTokenStateMachine"]["Properties"]["DefinitionSubstitutions"][
            "TokenVendorArn"
        ],
        "output": variant["Outputs"]["TokenVendorFunctionArn"]["Value"],
    }


def test_with_snapstart_the_schedule_the_api_and_the_state_machine_invoke_the_alias(
    variants: dict[str, dict[str, Any]],
) -> None:
    pointers = _pointers(variants["snapstart"])
    assert pointers["schedule"] == {"Ref": "TokenVendorFunctionAliaslive"}  # SAM wires events to the alias
    assert _with(pointers, snapstart=True) == {
        "schedule": {"Ref": "TokenVendorFunctionAliaslive"},
        "api": {"Ref": "TokenApiFunctionAliaslive"},
        "api permission": {"Ref": "TokenApiFunctionAliaslive"},
        "state machine": {"Ref": "TokenVendorFunctionAliaslive"},
        "output": {"Ref": "TokenVendorFunctionAliaslive"},
    }
    unqualified = _with(pointers, snapstart=False)
    assert unqualified["api"] == {"Fn::GetAtt": ["TokenApiFunction", "Arn"]}  # as before, without SnapStart
    assert unqualified["api permission"] == {"Ref": "TokenApiFunction"}
    assert unqualified["state machine"] == {"Fn::GetAtt": ["TokenVendorFunction", "Arn"]}


def test_with_snapstart_the_function_url_and_its_permissions_name_the_alias(
    variants: dict[str, dict[str, Any]],
) -> None:
    resources = variants["snapstart-function-url-organization"]["Resources"]
    url = _with(resources["TokenApiFunctionUrl"]["Properties"], snapstart=True)
    assert (url["TargetFunctionArn"], url["Qualifier"]) == ({"Ref": "TokenApiFunction"}, "live")
    for name in ("TokenApiFunctionUrlOrganization", "TokenApiFunctionUrlOrganizationInvoke"):
        permission = _with(resources[name]["Properties"], snapstart=True)
        assert permission["FunctionName"] == {"Ref": "TokenApiFunctionAliaslive"}
    assert _with(resources["TokenApiFunctionUrl"]["Properties"], snapstart=False)["Qualifier"] == {
        "Ref": "AWS::NoValue"
    }
