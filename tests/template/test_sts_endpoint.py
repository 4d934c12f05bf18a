"""Issue 31: the template gives the vendor its partition's STS endpoint, or the one a parameter names."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.aws import load_template
from token_vendor.kernel.partitions import botocore_partitions
from token_vendor.kernel.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("region", ["eu-west-2", "cn-north-1", "eusc-de-east-1", "us-iso-east-1"])
def test_the_template_derives_the_sts_endpoint_the_vendor_would(region: str) -> None:
    template = load_template(REPO / "template.yaml")
    env = template["Resources"]["TokenVendorFunction"]["Properties"]["Environment"]["Variables"]
    condition, parameter, derived = env["STS_ENDPOINT_URL"]["Fn::If"]
    assert (condition, parameter) == ("HasStsEndpointUrl", {"Ref": "StsEndpointUrl"})
    assert template["Parameters"]["StsEndpointUrl"]["Default"] == ""
    # AWS::URLSuffix is the partition's domain (amazonaws.com, amazonaws.com.cn, ...): botocore's dnsSuffix.
    (partition,) = [p for p in botocore_partitions() if region in p["regions"]]
    url = derived["Fn::Sub"].replace("${AWS::Region}", region)
    url = url.replace("${AWS::URLSuffix}", partition["outputs"]["dnsSuffix"])

    base = {"TENANT_FQDN": "t.example.com", "SERVICE_ACCOUNT_SECRET_ID": "s", "TOKEN_CACHE_TABLE": "tab"}
    assert url == load_settings({**base, "AWS_REGION": region}).sts_endpoint_url
