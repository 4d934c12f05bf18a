"""Issue 10: wiring happens in Lambda's init phase; a bad setting still surfaces on invocation, once."""

from __future__ import annotations

import logging

import pytest

from token_vendor.kernel.errors import ConfigurationError
from token_vendor.wiring import Runtime

VALID = {
    "TENANT_FQDN": "openam-example.id.forgerock.io",
    "SERVICE_ACCOUNT_SECRET_ID": "aic/key",
    "TOKEN_CACHE_TABLE": "tokens",
}


@pytest.fixture(autouse=True)
def lambda_like_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda hands the role's credentials in the environment; no metadata service is ever asked."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)


def test_prepare_builds_the_vendor_before_any_invocation() -> None:
    runtime = Runtime(VALID)
    runtime.prepare()

    vendor = runtime._vendor
    assert vendor is not None
    assert runtime.vendor() is vendor  # the invocation reuses what init built


def test_a_bad_setting_is_kept_at_init_and_raised_on_every_invocation_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = Runtime({**VALID, "TENANT_FQDN": "https://not-a-host/"})
    with caplog.at_level(logging.ERROR, logger="token_vendor"):
        runtime.prepare()
        assert caplog.records == []  # init does not log: the invocation does, once
        for _ in range(3):
            with pytest.raises(ConfigurationError, match="TENANT_FQDN"):
                runtime.vendor()

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "TENANT_FQDN" in errors[0].getMessage()
