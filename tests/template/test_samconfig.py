"""Issue 23: samconfig.toml as SAM itself reads it, and `make deploy` as SAM runs it.

SAM's own classes (``SamConfig``, the ``--parameter-overrides`` type) run in the SAM CLI's virtual
environment (.venv-sam, which `make test` installs): SAM splits every list entry on spaces unless its value
is quoted, and looks for samconfig.toml beside --template-file unless told where it is.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.aws import load_template
from token_vendor.kernel.settings import parse_caller_policy

REPO = Path(__file__).resolve().parents[2]
SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"
SAM = REPO / ".venv-sam" / "bin" / "sam"

READ_AS_SAM = """
import json, sys
from pathlib import Path
from samcli.cli.types import CfnParameterOverridesType
from samcli.lib.config.samconfig import SamConfig

config = SamConfig(str(Path(sys.argv[1]).resolve()), filename="samconfig.toml")
parse = CfnParameterOverridesType()
out = {}
for env in sys.argv[2:]:
    values = config.get_all(["deploy"], "parameters", env=env)
    overrides = values.pop("parameter_overrides")
    merged = {}
    for entry in overrides if isinstance(overrides, list) else [overrides]:
        merged.update(parse.convert(entry, None, None))  # what `sam deploy` does with each entry
    out[env] = {"settings": values, "parameters": merged}
print(json.dumps(out))
"""

EXPECTED = {
    "dev": {
        "stack_name": "aic-token-vendor-dev",
        "region": "eu-west-2",
        "capabilities": "CAPABILITY_IAM",
        "parameters": {
            "TenantFqdn": "openam-example-dev.id.forgerock.io",
            "ServiceAccountSecretArn": "arn:aws:secretsmanager:eu-west-2:111122223333:secret:aic/token-vendor/dev-AbCdEf",  # noqa: E501
            "AllowedScopes": "fr:idm:* fr:am:*",
            "CallerPolicy": json.dumps(
                {
                    "arn:aws:iam::111122223333:role/reporting-*": ["fr:idm:*"],
                    "arn:aws:iam::111122223333:role/sync-lambda": ["fr:idm:*", "fr:am:*"],
                }
            ),
            "HttpFront": "function-url",
            "ResourcePolicyMode": "account",
            "ApiAccessLogging": "false",
            "LogRetentionDays": "30",
        },
    },
    "prod": {
        "stack_name": "aic-token-vendor-prod",
        "region": "eu-west-2",
        "capabilities": "CAPABILITY_IAM",
        "parameters": {
            "TenantFqdn": "openam-example-ew2.id.forgerock.io",
            "ServiceAccountSecretArn": "arn:aws:secretsmanager:eu-west-2:444455556666:secret:aic/token-vendor/prod-GhIjKl",  # noqa: E501
            "AllowedScopes": "fr:idm:*",
            "DirectInvokeScopes": "",
            "CallerPolicyParameterName": "/aic-token-vendor/prod/caller-policy",
            "CallerPolicyParameterVersion": "1",
            "HttpFront": "rest-api",
            "ResourcePolicyMode": "organization",
            "AllowedOrganizationId": "o-a1b2c3d4e5",
            "ReservedConcurrency": "20",
            "AlarmTopicArn": "arn:aws:sns:eu-west-2:444455556666:platform-alarms",
            "ApiAccessLogging": "true",
            "CreateApiGatewayLoggingRole": "true",
            "LogRetentionDays": "400",
        },
    },
}


def _need_sam() -> None:
    if not SAM_PYTHON.exists():
        pytest.skip(f"the SAM CLI is not installed ({SAM_PYTHON}); `make test` installs it")


@pytest.fixture(scope="module")
def as_sam_reads_it() -> dict[str, Any]:
    _need_sam()
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", READ_AS_SAM, str(REPO), *EXPECTED],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.mark.parametrize("env", list(EXPECTED))
def test_sam_reads_each_environment_exactly_as_written(env: str, as_sam_reads_it: dict[str, Any]) -> None:
    got = as_sam_reads_it[env]
    expected = EXPECTED[env]
    for setting in ("stack_name", "region", "capabilities"):
        assert got["settings"][setting] == expected[setting]
    assert got["parameters"] == expected["parameters"]


@pytest.mark.parametrize("env", list(EXPECTED))
def test_every_value_is_one_the_template_accepts(env: str, as_sam_reads_it: dict[str, Any]) -> None:
    parameters = load_template()["Parameters"]
    for name, value in as_sam_reads_it[env]["parameters"].items():
        assert name in parameters, name
        declared = parameters[name]
        if "AllowedValues" in declared:
            assert value in [str(v) for v in declared["AllowedValues"]], (name, value)
        if "AllowedPattern" in declared:
            assert re.fullmatch(declared["AllowedPattern"], value), (name, value)
    policy = as_sam_reads_it[env]["parameters"].get("CallerPolicy")
    if policy is not None:
        assert parse_caller_policy(policy)  # the function reads what SAM passes


def test_make_deploy_hands_sam_the_repositorys_samconfig(tmp_path: Path) -> None:
    """`make deploy ENV=dev` as SAM runs it: the config is found although the template is elsewhere. AWS is
    an address nothing listens on, so SAM stops at its first AWS call, after reading the stack name."""
    _need_sam()
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "deploy", "ENV=dev"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    command = next(line for line in dry.stdout.splitlines() if " deploy " in line and "sam" in line)
    args = shlex.split(command)
    assert "--config-file" in args
    assert args[args.index("--config-file") + 1] == str(REPO / "samconfig.toml")
    built = tmp_path / ".aws-sam" / "build"
    built.mkdir(parents=True)
    shutil.copy(REPO / "template.yaml", built / "template.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="not-a-secret",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
        AWS_MAX_ATTEMPTS="1",
    )
    result = subprocess.run(
        [str(SAM), *args[1:]], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0  # nothing to deploy to
    assert "Missing option" not in output
    assert "--stack-name" not in output or "aic-token-vendor-dev" in output
    assert re.search(r"127\.0\.0\.1:9|Could not connect|connect", output), output[-2000:]


TRANSFORM_ROLES = """
import json, logging, os, sys
sys.path.insert(0, sys.argv[1] + "/tools")
logging.disable(logging.WARNING)
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-2")
from samtranslator.yaml_helper import yaml_parse
from transform_template import TEMPLATE, transformed

out = {}
for mode in ("Active", "Disabled"):
    resources = transformed(yaml_parse(TEMPLATE.read_text()), {"XRayTracing": mode})["Resources"]
    out[mode] = {
        name: [json.dumps(arn) for arn in r["Properties"].get("ManagedPolicyArns", [])]
        for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"
    }
print(json.dumps(out))
"""


def test_x_ray_permissions_follow_the_tracing_switch_as_sam_generates_them() -> None:
    """Issue 23: SAM gave both functions' roles AWSXrayWriteOnlyAccess whether tracing was on or off."""
    _need_sam()
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", TRANSFORM_ROLES, str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    roles = json.loads(result.stdout)
    for role in ("TokenVendorFunctionRole", "TokenApiFunctionRole"):
        assert any("AWSXrayWriteOnlyAccess" in arn for arn in roles["Active"][role])
        assert not any("AWSXrayWriteOnlyAccess" in arn for arn in roles["Disabled"][role])
