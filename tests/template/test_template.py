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


def test_only_the_functions_role_may_use_the_cache_key_and_only_for_the_token_cache(
    template: dict[str, Any],
) -> None:
    """Issue 15: the account root administers the key; it is no longer granted kms:* (use included)."""
    statements = template["Resources"]["TokenCacheKey"]["Properties"]["KeyPolicy"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    admin = by_sid["AccountAdministersOnly"]["Action"]
    assert "kms:*" not in admin
    assert not {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt*"} & set(admin)
    use = by_sid["VendorEnvelopeUse"]
    assert use["Principal"] == {"AWS": {"Fn::GetAtt": "TokenVendorFunctionRole.Arn"}}
    assert use["Condition"] == {"StringEquals": {"kms:EncryptionContext:purpose": "token-cache"}}
    # DynamoDB's own SSE may use it only through DynamoDB, for this account.
    sse = by_sid["DynamoDbServerSideEncryption"]["Condition"]["StringEquals"]
    assert set(sse) == {"kms:ViaService", "kms:CallerAccount"}
    function_policy = template["Resources"]["TokenVendorFunction"]["Properties"]["Policies"][0]["Statement"]
    envelope = next(s for s in function_policy if s.get("Sid") == "EnvelopeWithTheOneKey")
    assert envelope["Condition"] == {"StringEquals": {"kms:EncryptionContext:purpose": "token-cache"}}


def test_the_state_machine_may_invoke_the_vendor_and_its_qualifiers_only(template: dict[str, Any]) -> None:
    policies = template["Resources"]["SampleTokenStateMachine"]["Properties"]["Policies"]
    assert not any("LambdaInvokePolicy" in p for p in policies)  # SAM's grants function:<name>*
    invoke = next(s for s in _statements(template) if s.get("Sid") == "InvokeTheVendorOnly")
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert invoke["Resource"] == [
        {"Fn::GetAtt": "TokenVendorFunction.Arn"},
        {"Fn::Sub": "${TokenVendorFunction.Arn}:*"},
    ]


def test_direct_invocation_is_deny_by_default_and_allowed_scopes_is_required(
    template: dict[str, Any],
) -> None:
    parameters = template["Parameters"]
    assert "Default" not in parameters["AllowedScopes"]
    assert parameters["AllowedScopes"]["MinLength"] == 1
    assert parameters["DirectInvokeScopes"]["Default"] == ""
    env = template["Resources"]["TokenVendorFunction"]["Properties"]["Environment"]["Variables"]
    condition, with_machine, without = env["DIRECT_INVOKE_SCOPES"]["Fn::If"]
    assert condition == "WithStateMachine"
    assert without == {"Ref": "DirectInvokeScopes"}
    assert with_machine == {"Fn::Join": [" ", ["fr:idm:*", {"Ref": "DirectInvokeScopes"}]]}
    # The sample state machine asks for exactly the scope it is granted.
    definition = template["Resources"]["SampleTokenStateMachine"]["Properties"]["Definition"]
    assert definition["States"]["GetToken"]["Parameters"]["Payload"]["scope"] == "fr:idm:*"


def test_the_vpc_endpoint_mode_also_limits_the_principals_account(template: dict[str, Any]) -> None:
    statements = template["Resources"]["TokenApi"]["Properties"]["Auth"]["ResourcePolicy"]["CustomStatements"]
    conditional = [s["Fn::If"] for s in statements if "Fn::If" in s]
    assert conditional, "no statement is conditioned on the resource policy mode"
    condition, deny, otherwise = conditional[0]
    assert condition == "IsVpcEndpoint"
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"StringNotEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    assert otherwise == {"Ref": "AWS::NoValue"}
