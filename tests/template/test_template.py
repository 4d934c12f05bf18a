"""Issue 4: the SAM template is lint-clean, least-privileged, and the source of the test table."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.aws import load_template, table_definition

REPO = Path(__file__).resolve().parents[2]
LINT_BIN = REPO / ".venv-lint" / "bin"
needs_lint_venv = pytest.mark.skipif(
    not (LINT_BIN / "cfn-lint").exists(),
    reason="cfn-lint/checkov live in .venv-lint; 'make test' and 'make lint' create it",
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO / "template.yaml")


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@needs_lint_venv
def test_cfn_lint_reports_nothing() -> None:
    result = subprocess.run(
        [str(LINT_BIN / "cfn-lint"), str(REPO / "template.yaml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_lint_venv
def test_checkov_has_no_failed_check_and_every_skip_has_a_reason(template: dict[str, Any]) -> None:
    result = subprocess.run(
        [
            str(LINT_BIN / "checkov"),
            "--quiet",
            "--compact",
            "--skip-download",
            "--framework",
            "cloudformation",
            "-f",
            str(REPO / "template.yaml"),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    assert report["summary"]["failed"] == 0, report["results"].get("failed_checks")
    for resource in template["Resources"].values():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, skip


def test_the_table_is_what_the_contract_says(template: dict[str, Any]) -> None:
    props = table_definition(template)

    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["SSESpecification"]["KMSMasterKeyId"] == {"Ref": "TokenCacheKey"}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_function_is_wired_as_the_contract_says(template: dict[str, Any]) -> None:
    function = template["Resources"]["TokenVendorFunction"]["Properties"]
    globals_ = template["Globals"]["Function"]

    assert function["CodeUri"] == "functions/token_vendor/"
    assert function["Handler"] == "token_vendor.app.lambda_handler"
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    env = function["Environment"]["Variables"]
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    assert {"TENANT_FQDN", "SERVICE_ACCOUNT_SECRET_ID", "TOKEN_CACHE_TABLE", "TOKEN_CACHE_KEY_ID"} <= set(env)


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for resource in template["Resources"].values():
        for policy in resource.get("Properties", {}).get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                for statement in policy["Statement"]:
                    if "Fn::If" in statement:
                        found.extend(
                            s for s in statement["Fn::If"][1:] if isinstance(s, dict) and "Effect" in s
                        )
                    else:
                        found.append(statement)
    return found


def test_function_permissions_name_one_secret_one_table_one_key(template: dict[str, Any]) -> None:
    function_policy = template["Resources"]["TokenVendorFunction"]["Properties"]["Policies"][0]["Statement"]
    by_sid = {s["Sid"]: s for s in function_policy if "Sid" in s}

    assert by_sid["ReadTheOneSecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert by_sid["ReadTheOneSecret"]["Resource"] == {"Ref": "ServiceAccountSecretArn"}
    assert set(by_sid["UseTheOneTable"]["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert by_sid["UseTheOneTable"]["Resource"] == {"Fn::GetAtt": "TokenCacheTable.Arn"}
    assert set(by_sid["EnvelopeWithTheOneKey"]["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert by_sid["EnvelopeWithTheOneKey"]["Resource"] == {"Fn::GetAtt": "TokenCacheKey.Arn"}


def test_no_wildcard_resource_without_a_reason(template: dict[str, Any]) -> None:
    text = (REPO / "template.yaml").read_text()
    for line in text.splitlines():
        if re.search(r'Resource:\s*"\*"', line):
            assert "#" in line, f"a Resource: '*' needs its reason on the line: {line.strip()}"
    for statement in _statements(template):
        if statement.get("Resource") == "*":
            assert statement["Sid"] == "StepFunctionsLogDelivery"


def test_the_api_uses_iam_authorization_and_never_caches(template: dict[str, Any]) -> None:
    api = template["Resources"]["TokenApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    assert "CacheClusterEnabled" not in api
    for setting in api.get("MethodSettings", []):
        assert not setting.get("CachingEnabled", False)


def test_log_event_is_off_everywhere() -> None:
    for path in [REPO / "template.yaml", *(REPO / "functions").rglob("*.py")]:
        assert not re.search(r"log_event\s*=\s*True", path.read_text()), path
