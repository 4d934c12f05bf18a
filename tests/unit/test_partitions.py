"""Partitions from botocore's own data (issue 31): the vendor's region check and default STS endpoint, and
the client's signing scope for API Gateway and function URL hosts, in every partition botocore knows."""

from __future__ import annotations

import functools
from typing import Any

import botocore.loaders
import botocore.session
import pytest

from token_client.transports import region_of, service_of
from token_vendor.kernel.errors import ConfigurationError
from token_vendor.kernel.settings import load_settings

BASE = {
    "TENANT_FQDN": "openam-example-ew2.id.forgerock.io",
    "SERVICE_ACCOUNT_SECRET_ID": "aic/service-account",
    "TOKEN_CACHE_TABLE": "token-cache",
}


def _botocore_regions() -> list[str]:
    """Every region botocore names, in endpoints.json or partitions.json, but the ``*-global`` pseudo-regions
    (no regional endpoint serves them, and Lambda never runs in one)."""
    loader = botocore.loaders.create_loader()
    names: set[str] = set()
    for document in (loader.load_data("endpoints"), loader.load_data("partitions")):
        for partition in document["partitions"]:
            names.update(partition["regions"])
    return sorted(name for name in names if name != "aws-global" and not name.endswith("-global"))


REGIONS = _botocore_regions()


@functools.cache
def _session() -> Any:
    return botocore.session.Session()


def test_botocore_knows_the_partitions_this_test_is_about() -> None:
    assert {"us-east-1", "cn-north-1", "eusc-de-east-1", "us-iso-east-1", "us-isob-east-1"} <= set(REGIONS)


@pytest.mark.parametrize("region", REGIONS)
def test_every_botocore_region_passes_and_gets_the_sts_endpoint_botocore_resolves(region: str) -> None:
    settings = load_settings({**BASE, "AWS_REGION": region})

    sts = _session().create_client(
        "sts", region_name=region, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="example"
    )
    assert settings.sts_endpoint_url == sts.meta.endpoint_url + "/"


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-east-1", "https://sts.us-east-1.amazonaws.com/"),
        ("cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn/"),
        ("eusc-de-east-1", "https://sts.eusc-de-east-1.amazonaws.eu/"),
        ("us-iso-east-1", "https://sts.us-iso-east-1.c2s.ic.gov/"),
        ("us-isob-east-1", "https://sts.us-isob-east-1.sc2s.sgov.gov/"),
        ("eu-isoe-west-1", "https://sts.eu-isoe-west-1.cloud.adc-e.uk/"),
        ("us-isof-south-1", "https://sts.us-isof-south-1.csp.hci.ic.gov/"),
        ("us-gov-west-1", "https://sts.us-gov-west-1.amazonaws.com/"),
    ],
)
def test_the_default_sts_endpoint_is_the_regional_one_of_the_partition(region: str, endpoint: str) -> None:
    assert load_settings({**BASE, "AWS_DEFAULT_REGION": region}).sts_endpoint_url == endpoint


def test_an_sts_endpoint_setting_still_wins() -> None:
    env = {**BASE, "AWS_REGION": "cn-north-1", "STS_ENDPOINT_URL": "https://sts.cn-north-1.example.cn/"}

    assert load_settings(env).sts_endpoint_url == "https://sts.cn-north-1.example.cn/"


@pytest.mark.parametrize(
    "region",
    [
        "US-EAST-1",
        "us-east-1\nx",
        "us-east-\u0661",  # an Arabic-Indic digit: botocore's \d alone would take it
        "us-east_x-1",
        "aws-global",
        "xx-east-1",
        "us-east-1.example.com",
        "../us-east-1",
        "eusc-fr-east-1",
        "cn-north-1-" + "a" * 60,
    ],
)
def test_garbage_regions_are_refused_at_cold_start(region: str) -> None:
    with pytest.raises(ConfigurationError, match="setting AWS_REGION is not a region"):
        load_settings({**BASE, "AWS_REGION": region})


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("https://abc123.execute-api.eu-west-2.amazonaws.com/v1/token", ("execute-api", "eu-west-2")),
        ("https://abc123.execute-api.cn-north-1.amazonaws.com.cn/v1/token", ("execute-api", "cn-north-1")),
        (
            "https://abc123.execute-api.eusc-de-east-1.amazonaws.eu/v1/token",
            ("execute-api", "eusc-de-east-1"),
        ),
        ("https://abc123.execute-api.us-iso-east-1.c2s.ic.gov/v1/token", ("execute-api", "us-iso-east-1")),
        (
            "https://abc123.execute-api.us-isob-east-1.sc2s.sgov.gov/v1/token",
            ("execute-api", "us-isob-east-1"),
        ),
        (
            "https://vpce-0a1-b2c.execute-api.us-gov-west-1.vpce.amazonaws.com/v1/t",
            ("execute-api", "us-gov-west-1"),
        ),
        ("https://xyz.lambda-url.eu-west-2.on.aws/token", ("lambda", "eu-west-2")),
        ("https://xyz.lambda-url.cn-north-1.on.amazonwebservices.com.cn/token", ("lambda", "cn-north-1")),
        ("https://xyz.lambda-url.cn-northwest-1.on.aws/token", ("lambda", "cn-northwest-1")),
        ("https://xyz.lambda-url.eusc-de-east-1.on.amazonwebservices.eu/token", ("lambda", "eusc-de-east-1")),
        ("https://xyz.lambda-url.us-gov-east-1.on.aws/token", ("lambda", "us-gov-east-1")),
    ],
)
def test_the_client_signs_for_the_service_and_region_the_host_names(url: str, scope: tuple[str, str]) -> None:
    assert (service_of(url), region_of(url)) == scope


@pytest.mark.parametrize(
    "url",
    [
        "https://tokens.example.com/v1/token",
        "http://127.0.0.1:8080/v1/token",
        "https://abc.execute-api.aws-global.amazonaws.com/v1/token",
        "https://abc.lambda-url.not-a-region.on.aws/token",
    ],
)
def test_a_host_that_names_no_region_leaves_the_region_to_the_session(url: str) -> None:
    assert (service_of(url), region_of(url)) == ("execute-api", None)


@pytest.mark.parametrize(
    "region", ["eu-west-2", "cn-north-1", "eusc-de-east-1", "us-iso-east-1", "us-gov-west-1"]
)
def test_a_client_proof_is_addressed_to_the_sts_endpoint_the_vendor_expects(
    region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's proof names botocore's STS endpoint for its region; the vendor refuses any other URL."""
    from token_client.identity import IdentityProver

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_CONFIG_FILE", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    session = botocore.session.Session()
    session.set_credentials("AKIDEXAMPLE", "example-secret")

    proof = IdentityProver(session, region, "token-vendor", clock=lambda: 1_700_000_000.0).proof()

    assert proof["url"] == load_settings({**BASE, "AWS_REGION": region}).sts_endpoint_url
