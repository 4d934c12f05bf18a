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
from tests.template.iam_model import Stack

REPO = Path(__file__).resolve().parents[2]
LINT_BIN = REPO / ".venv-lint" / "bin"
needs_lint_venv = pytest.mark.skipif(
    not (LINT_BIN / "cfn-lint").exists(),
    reason="cfn-lint/checkov live in .venv-lint; 'make test' and 'make lint' create it",
)

# The API function itself, or its alias "live" when SnapStart is on (tests/template/test_snapstart.py).
API_FUNCTION = {"Fn::If": ["WithSnapStart", {"Ref": "TokenApiFunction.Alias"}, {"Ref": "TokenApiFunction"}]}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO / "template.yaml")


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@needs_lint_venv
def test_cfn_lint_reports_nothing() -> None:
    result = subprocess.run(
        # informational checks included; W1030 is the one documented suppression (Makefile CFN_LINT_IGNORE)
        [
            str(LINT_BIN / "cfn-lint"),
            "--include-checks",
            "I",
            "--ignore-checks",
            "W1030",
            "--",
            str(REPO / "template.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
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
    # Issue 32: the AWS owned key (each token is already sealed under TokenCacheKey); a customer managed
    # table key would need every caller's kms:Decrypt via DynamoDB (tests/template/test_authorization.py).
    assert props["SSESpecification"] == {"SSEEnabled": False}
    assert "PointInTimeRecoverySpecification" not in props  # issue 23: a cache needs no backups (decisions)


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
        "dynamodb:Scan",  # the scheduled refresh finds the scope sets in use (issue 25)
    }
    api_policy = template["Resources"]["TokenApiFunction"]["Properties"]["Policies"][0]["Statement"]
    api_table = next(s for s in api_policy if s.get("Sid") == "UseTheOneTable")
    assert "dynamodb:Scan" not in api_table["Action"]  # the API function runs no schedule
    # The table and the key are named (not referenced): role -> table -> key -> role would be a cycle.
    table = template["Resources"]["TokenCacheTable"]["Properties"]["TableName"]
    assert table == {"Fn::Sub": "${AWS::StackName}-token-cache"}
    table_arn = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${AWS::StackName}"
    assert by_sid["UseTheOneTable"]["Resource"] == {"Fn::Sub": table_arn + "-token-cache"}
    envelope = by_sid["EnvelopeWithTheOneKey"]
    assert set(envelope["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert envelope["Condition"]["ForAnyValue:StringEquals"] == {
        "kms:ResourceAliases": {"Fn::Sub": "alias/${AWS::StackName}-token-cache"}
    }
    alias = template["Resources"]["TokenCacheKeyAlias"]["Properties"]["AliasName"]
    assert alias == {"Fn::Sub": "alias/${AWS::StackName}-token-cache"}


def test_no_wildcard_resource_without_a_reason(template: dict[str, Any]) -> None:
    text = (REPO / "template.yaml").read_text()
    for line in text.splitlines():
        if re.search(r'Resource:\s*"\*"', line):
            assert "#" in line, f"a Resource: '*' needs its reason on the line: {line.strip()}"
    for statement in _statements(template):
        if statement.get("Resource") == "*":
            assert statement["Sid"] in (
                "StepFunctionsLogDelivery",
                "WriteTraces",
            )  # no resource-level permissions


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
    assert use["Principal"] == {
        "AWS": [{"Fn::GetAtt": "TokenVendorFunctionRole.Arn"}, {"Fn::GetAtt": "TokenApiFunctionRole.Arn"}]
    }
    assert use["Condition"] == {"StringEquals": {"kms:EncryptionContext:purpose": "token-cache"}}
    # Issue 32: the table is under the AWS owned key, so nothing else may use this one.
    assert set(by_sid) == {"AccountAdministersOnly", "VendorEnvelopeUse"}
    function_policy = template["Resources"]["TokenVendorFunction"]["Properties"]["Policies"][0]["Statement"]
    envelope = next(s for s in function_policy if s.get("Sid") == "EnvelopeWithTheOneKey")
    assert envelope["Condition"]["StringEquals"] == {"kms:EncryptionContext:purpose": "token-cache"}


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


# -- issue 17: the first deploy in a real account -----------------------------------------------------
def test_concurrency_is_a_parameter_with_no_reservation_by_default(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ReservedConcurrency"]
    assert (parameter["Default"], parameter["MinValue"]) == (0, 0)
    function = template["Resources"]["TokenVendorFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }


def test_the_api_gateway_logging_role_is_created_only_when_asked(template: dict[str, Any]) -> None:
    assert template["Parameters"]["CreateApiGatewayLoggingRole"]["Default"] == "false"
    resources = template["Resources"]
    assert resources["ApiGatewayAccount"]["Condition"] == "CreateLoggingRole"
    assert resources["ApiGatewayLoggingRole"]["Condition"] == "CreateLoggingRole"
    assert resources["ApiGatewayAccount"]["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": "ApiGatewayLoggingRole.Arn"
    }
    assert resources["TokenApi"]["DependsOn"] == "LoggingRoleReady"  # the stage waits for the setting
    access = resources["TokenApi"]["Properties"]["AccessLogSetting"]["Fn::If"]
    assert access[0] == "WithRestApiAccessLogs"
    assert access[2] == {"Ref": "AWS::NoValue"}


def test_rules_refuse_empty_ids_and_tie_the_vpc_endpoint_mode_to_a_private_api(
    template: dict[str, Any],
) -> None:
    rules = template["Rules"]
    organization = rules["OrganizationModeNeedsAnOrganization"]
    assert organization["RuleCondition"] == {"Fn::Equals": [{"Ref": "ResourcePolicyMode"}, "organization"]}
    assert organization["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AllowedOrganizationId"}, ""]}]
    }
    vpc = rules["VpcEndpointModeNeedsAnEndpoint"]
    asserts = [a["Assert"] for a in vpc["Assertions"]]
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": "AllowedVpcEndpointId"}, ""]}]} in asserts
    assert {"Fn::Equals": [{"Ref": "PrivateEndpoint"}, "true"]} in asserts


def test_every_stateful_resource_says_what_survives_a_deletion(template: dict[str, Any]) -> None:
    stateful = {"AWS::Logs::LogGroup", "AWS::KMS::Key", "AWS::DynamoDB::Table"}
    for name, resource in template["Resources"].items():
        if resource["Type"] in stateful:
            assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"], name
            expected = "Retain" if resource["Type"] == "AWS::Logs::LogGroup" else "Delete"
            assert resource["DeletionPolicy"] == expected, name  # logs are the audit trail; the rest a cache


def test_tracing_is_one_switch_for_the_api_the_function_and_the_state_machine(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    assert template["Parameters"]["XRayTracing"]["Default"] == "Disabled"
    assert resources["TokenApi"]["Properties"]["TracingEnabled"] == {"Fn::If": ["WithTracing", True, False]}
    # Issue 23: SAM resolves a Ref itself, so its X-Ray policy reaches the functions' roles only when Active.
    for name in ("TokenVendorFunction", "TokenApiFunction"):
        assert resources[name]["Properties"]["Tracing"] == {"Ref": "XRayTracing"}
    # The state machine gets no SAM X-Ray policy for a conditional: an explicit one, under the condition.
    statements = resources["SampleTokenStateMachine"]["Properties"]["Policies"][0]["Statement"]
    xray = [st["Fn::If"] for st in statements if "Fn::If" in st and st["Fn::If"][0] == "WithTracing"]
    assert [x[1]["Sid"] for x in xray] == ["WriteTraces"]
    assert xray[0][2] == {"Ref": "AWS::NoValue"}
    machine = resources["SampleTokenStateMachine"]["Properties"]["Tracing"]["Enabled"]
    assert machine == {"Fn::If": ["WithTracing", True, False]}


# -- issue 13: operate -------------------------------------------------------------------------------
def test_the_dashboard_shows_what_operators_ask_for(template: dict[str, Any]) -> None:
    shown: set[str] = set()
    for front in ("rest-api", "function-url"):
        stack = Stack(template)
        stack.parameters["HttpFront"] = front
        body = json.loads(
            stack.resolve(template["Resources"]["TokenVendorDashboard"]["Properties"]["DashboardBody"])
        )
        shown |= {m[1] for w in body["widgets"] for m in w["properties"]["metrics"]}
    wanted = {
        "MemoryHits", "TableHits", "Mints", "StaleServed", "MintLatency", "MintFailures", "LeaseWaits",
        "Refused_AccessDenied", "Refused_InvalidScope", "TokenRetired", "RetireRateLimited",
        "CacheUnavailable", "CacheMisconfigured", "4XXError", "5XXError", "Url4xxCount", "Url5xxCount",
        "Duration", "ColdStart", "Throttles", "ScheduledRefreshes", "ScheduledRefreshFailures",
    }  # fmt: skip
    assert wanted <= shown
    url = template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert "#dashboards:name=${TokenVendorDashboard}" in url


def test_misconfiguration_pages_at_once_and_cache_trouble_when_sustained(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    misconfigured = resources["CacheMisconfiguredAlarm"]["Properties"]
    assert (misconfigured["MetricName"], misconfigured["Threshold"], misconfigured["EvaluationPeriods"]) == (
        "CacheMisconfigured",
        1,
        1,
    )
    unavailable = resources["CacheUnavailableAlarm"]["Properties"]
    assert unavailable["MetricName"] == "CacheUnavailable"
    # Issue 23: five-minute periods, 2 of 3 (memory hits never touch the table: one-minute periods of a quiet
    # fleet are "no data", and 5 of 5 almost never fired).
    assert (unavailable["Period"], unavailable["EvaluationPeriods"], unavailable["DatapointsToAlarm"]) == (
        300,
        3,
        2,
    )


def test_alarms_watch_what_an_operator_must_act_on(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    watched = {
        (r["Properties"]["MetricName"], json.dumps(r["Properties"]["Dimensions"][0]["Value"]))
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    for metric in (
        "Refused_ConfigurationError",
        "Refused_InternalError",
        "MintFailures",
        "CacheMisconfigured",
    ):
        assert (metric, '"token_vendor"') in watched
    assert ("Throttles", '{"Ref": "TokenVendorFunction"}') in watched
    assert ("Throttles", '{"Ref": "TokenApiFunction"}') in watched
    assert ("Url5xxCount", '{"Ref": "TokenApiFunction"}') in watched
    assert "FunctionErrorsAlarm" not in resources  # it counted callers' own mistakes as errors


def test_the_scheduled_refresh_runs_every_minute_and_can_be_turned_off(template: dict[str, Any]) -> None:
    """Issue 25: EventBridge Scheduler, a retry policy, a dead-letter queue, a parameter to turn it off."""
    function = template["Resources"]["TokenVendorFunction"]["Properties"]
    schedule = function["Events"]["KeepWarm"]
    assert schedule["Type"] == "ScheduleV2"
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(1 minute)"
    assert json.loads(props["Input"]) == {"refresh": "due"}
    assert props["State"] == {"Fn::If": ["WithScheduledRefresh", "ENABLED", "DISABLED"]}
    assert props["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert props["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": "RefreshDeadLetterQueue.Arn"}}
    env = function["Environment"]["Variables"]
    assert env["KEEP_WARM_SECONDS"] == {"Fn::If": ["WithScheduledRefresh", {"Ref": "KeepWarmSeconds"}, "0"]}
    alarm = template["Resources"]["ScheduledRefreshFailuresAlarm"]
    assert alarm["Properties"]["MetricName"] == "ScheduledRefreshFailures"
    actions = function["Policies"][0]["Statement"][1]["Action"]
    assert "dynamodb:Scan" in actions


def test_the_ssm_caller_policy_is_resolved_at_a_named_version(template: dict[str, Any]) -> None:
    for name in ("TokenVendorFunction", "TokenApiFunction"):
        env = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert env["CALLER_POLICY"]["Fn::If"][1] == {
            "Fn::Sub": "{{resolve:ssm:${CallerPolicyParameterName}:${CallerPolicyParameterVersion}}}"
        }


def test_key_admins_cannot_grant_themselves_use(template: dict[str, Any]) -> None:
    policy = template["Resources"]["TokenCacheKey"]["Properties"]["KeyPolicy"]["Statement"]
    admin = next(st for st in policy if st["Sid"] == "AccountAdministersOnly")
    assert "kms:Create*" not in admin["Action"]
    assert "kms:CreateGrant" not in admin["Action"]
    assert "kms:CreateAlias" in admin["Action"]


def test_a_partial_secret_arn_is_refused_by_the_parameter(template: dict[str, Any]) -> None:
    import re

    pattern = template["Parameters"]["ServiceAccountSecretArn"]["AllowedPattern"]
    full = "arn:aws:secretsmanager:eu-west-2:111122223333:secret:aic/token-vendor/prod-GhIjKl"
    assert re.fullmatch(pattern, full)
    assert not re.fullmatch(pattern, full[: -len("-GhIjKl")])


def test_the_http_front_is_a_choice_and_the_function_url_uses_iam(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["HttpFront"]
    assert (parameter["Default"], parameter["AllowedValues"]) == (
        "rest-api",
        ["rest-api", "function-url", "none"],
    )
    resources = template["Resources"]
    assert resources["TokenApi"]["Condition"] == "WithRestApi"
    assert resources["TokenApiInvokePermission"]["Condition"] == "WithRestApi"
    url = resources["TokenApiFunctionUrl"]
    assert (url["Condition"], url["Properties"]["AuthType"]) == ("WithFunctionUrl", "AWS_IAM")
    assert url["Properties"]["TargetFunctionArn"] == {"Ref": "TokenApiFunction"}  # its alias with SnapStart
    organization = resources["TokenApiFunctionUrlOrganization"]
    assert organization["Condition"] == "FunctionUrlForOrganization"
    assert organization["Properties"]["FunctionUrlAuthType"] == "AWS_IAM"
    assert organization["Properties"]["PrincipalOrgID"] == {"Ref": "AllowedOrganizationId"}
    # Issue 23: since October 2025 a URL caller also needs lambda:InvokeFunction, and only via the URL.
    invoke = resources["TokenApiFunctionUrlOrganizationInvoke"]["Properties"]
    assert (invoke["Action"], invoke["InvokedViaFunctionUrl"]) == ("lambda:InvokeFunction", True)
    assert invoke["PrincipalOrgID"] == {"Ref": "AllowedOrganizationId"}
    assert invoke["FunctionName"] == API_FUNCTION
    assert list(resources["TokenVendorFunction"]["Properties"]["Events"]) == ["KeepWarm"]  # the schedule only
    assert "Events" not in resources["TokenApiFunction"]["Properties"]
    # Every REST method is SigV4 (AWS_IAM), as before.
    body = resources["TokenApi"]["Properties"]["DefinitionBody"]
    for method in ("get", "post"):
        assert body["paths"]["/token"][method]["security"] == [{"sigv4": []}]
    assert body["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_two_functions_one_package_each_front_on_its_own_function(template: dict[str, Any]) -> None:
    """Issue 21: HTTP events reach only TokenApiFunction, whose permissions name only this stack's API and
    function URL; the state machine invokes TokenVendorFunction."""
    resources = template["Resources"]
    vendor, api = resources["TokenVendorFunction"]["Properties"], resources["TokenApiFunction"]["Properties"]
    assert (vendor["CodeUri"], api["CodeUri"]) == ("functions/token_vendor/", "functions/token_vendor/")
    assert (vendor["Handler"], api["Handler"]) == (
        "token_vendor.app.lambda_handler",
        "token_vendor.app.http_handler",
    )
    assert "DIRECT_INVOKE_SCOPES" not in api["Environment"]["Variables"]
    assert vendor["Environment"]["Variables"]["IDENTITY_AUDIENCE"] == {"Ref": "IdentityAudience"}
    permission = resources["TokenApiInvokePermission"]["Properties"]
    assert permission["FunctionName"] == API_FUNCTION
    assert "${TokenApi}" in permission["SourceArn"]["Fn::Sub"]
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert all(p["Properties"]["FunctionName"] == API_FUNCTION for p in permissions)
    body = json.dumps(resources["TokenApi"]["Properties"]["DefinitionBody"])
    assert "TokenApiFunction.Arn" in body
    assert "TokenVendorFunction" not in body
    machine = json.dumps(resources["SampleTokenStateMachine"]["Properties"])
    assert "TokenVendorFunction.Arn" in machine
    assert "TokenApiFunction" not in machine
    for name in ("TokenVendorFunction", "TokenApiFunction"):
        statements = resources[name]["Properties"]["Policies"][0]["Statement"]
        assert [st["Sid"] for st in statements if "Sid" in st] == [
            "ReadTheOneSecret",
            "UseTheOneTable",
            "EnvelopeWithTheOneKey",
        ]


def test_a_long_caller_policy_can_live_in_ssm(template: dict[str, Any]) -> None:
    env = template["Resources"]["TokenVendorFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CALLER_POLICY"] == {
        "Fn::If": [
            "HasCallerPolicyParameter",
            {"Fn::Sub": "{{resolve:ssm:${CallerPolicyParameterName}:${CallerPolicyParameterVersion}}}"},
            {"Ref": "CallerPolicy"},
        ]
    }


def test_only_the_opt_in_rotation_function_may_write_the_secret(template: dict[str, Any]) -> None:
    """Issue 26: the next key is made inside AWS by KeyRotationFunction; the vendor roles gain nothing."""
    resources = template["Resources"]
    rotation = resources["KeyRotationFunction"]
    assert rotation["Condition"] == "WithKeyRotation"
    assert rotation["Properties"]["Handler"] == "token_vendor.rotation.rotation_handler"
    statement = rotation["Properties"]["Policies"][0]["Statement"][0]
    assert statement["Resource"] == {"Ref": "ServiceAccountSecretArn"}
    assert "secretsmanager:PutSecretValue" in statement["Action"]
    assert "secretsmanager:UpdateSecretVersionStage" in statement["Action"]
    for name in ("TokenVendorFunction", "TokenApiFunction"):
        text = json.dumps(resources[name]["Properties"]["Policies"])
        assert "PutSecretValue" not in text
        assert "UpdateSecretVersionStage" not in text
