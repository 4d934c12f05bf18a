"""Writes ``template.yaml`` after SAM's transform, once per deployment variant, for the linters.

cfn-lint and checkov on the SAM source miss what the transform generates (the API's stage and deployment,
the function's role, the function URL): a suppression on ``AWS::Serverless::Api`` does not reach the
generated ``AWS::ApiGateway::Stage``. So ``make lint`` transforms the template for each
``ResourcePolicyMode`` / ``PrivateEndpoint`` / ``HttpFront`` combination (with the sample state machine,
tracing and the logging role on, so every optional resource is there), carries each checkov skip, with
its reason, to the resources generated from the resource that declared it, and lints the results.

Runs in the SAM CLI's virtual environment (it has ``samtranslator``); no AWS call is made.
Usage: python tools/transform_template.py OUT_DIR
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
COMMON = {
    "TenantFqdn": "openam-example-ew2.id.forgerock.io",
    "ServiceAccountSecretArn": "arn:aws:secretsmanager:eu-west-2:111122223333:secret:aic/key-AbCdEf",
    "AllowedScopes": "fr:idm:*",
    "DeploySampleStateMachine": "true",
    "KeyRotation": "true",
    "XRayTracing": "Active",
    "CreateApiGatewayLoggingRole": "true",
    "ReservedConcurrency": "20",
}
VARIANTS: dict[str, dict[str, str]] = {
    "account": {"ResourcePolicyMode": "account", "PrivateEndpoint": "false"},
    "account-private": {"ResourcePolicyMode": "account", "PrivateEndpoint": "true"},
    "organization": {"ResourcePolicyMode": "organization", "AllowedOrganizationId": "o-a1b2c3d4e5"},
    "vpc-endpoint": {
        "ResourcePolicyMode": "vpc-endpoint",
        "AllowedVpcEndpointId": "vpce-0123456789abcdef0",
        "PrivateEndpoint": "true",
    },
    # SnapStart on: every pointer at the functions names their alias.
    "snapstart": {"ResourcePolicyMode": "account", "SnapStart": "PublishedVersions"},
    "snapstart-function-url-organization": {
        "ResourcePolicyMode": "organization",
        "AllowedOrganizationId": "o-a1b2c3d4e5",
        "HttpFront": "function-url",
        "SnapStart": "PublishedVersions",
    },
}


class _NoManagedPolicies:
    """The template names no SAM managed policies, so nothing is looked up in IAM."""

    def load(self) -> dict[str, str]:
        return {}


def _variants(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    variants = dict(VARIANTS)
    http_front = template["Parameters"].get("HttpFront")
    if http_front:  # every HTTP front once, in the default policy mode
        for value in http_front["AllowedValues"]:
            variants[f"front-{value}"] = {"ResourcePolicyMode": "account", "HttpFront": value}
    return variants


def transformed(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    source = copy.deepcopy(template)
    for name, value in {**COMMON, **values}.items():
        if name in source["Parameters"]:
            source["Parameters"][name]["Default"] = value
    for name, resource in source["Resources"].items():  # what `sam package` puts in place of local paths
        properties = resource.get("Properties", {})
        for member in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(member), str):
                properties[member] = f"s3://artifacts-bucket/{name}.zip"
    output: dict[str, Any] = transform(source, {}, _NoManagedPolicies())
    skips = {
        name: resource["Metadata"]["checkov"]
        for name, resource in template["Resources"].items()
        if resource.get("Type", "").startswith("AWS::Serverless::")
        and "checkov" in resource.get("Metadata", {})
    }
    for name, resource in output["Resources"].items():
        if name in template["Resources"] and name not in skips:
            continue  # a resource of the source template keeps its own metadata
        # SAM names generated resources after their origin; the longest origin is the one (TokenApiFunction's
        # role comes from TokenApiFunction, not from TokenApi).
        origins = sorted((o for o in skips if name.startswith(o)), key=len, reverse=True)
        if origins:
            resource.setdefault("Metadata", {})["checkov"] = skips[origins[0]]
    return output


def main() -> int:
    logging.disable(logging.WARNING)  # samtranslator's notes on feature toggles and metrics are noise here
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-2")
    template = yaml_parse(TEMPLATE.read_text())
    for name, values in _variants(template).items():
        (out / f"{name}.json").write_text(json.dumps(transformed(template, values), indent=1))
    print(f"transform_template: {len(_variants(template))} variants written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
