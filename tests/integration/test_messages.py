"""Issue 12: messages that point at the real mistake."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import urllib3

from local.stack import LocalStack
from tests.integration.conftest import Recorder, budget, direct
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.kernel.errors import UpstreamUnavailable

pytestmark = pytest.mark.integration


def test_a_table_that_does_not_exist_is_misconfiguration_logged_once_and_counted(
    make_vendor: Any, fresh_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Recorder()
    vendor = make_vendor(metrics=metrics, TOKEN_CACHE_TABLE="no-such-table")
    with caplog.at_level(logging.WARNING, logger="token_vendor"):
        served = [
            vendor.vend(direct(scope), budget()) for scope in ("fr:idm:*", "fr:am:*", "fr:idc:esv:read")
        ]

    assert all(v.tier == "minted" for v in served)  # callers are still served
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].table == "no-such-table"  # type: ignore[attr-defined]
    assert "ResourceNotFoundException" in errors[0].reason  # type: ignore[attr-defined]
    assert metrics.counts["CacheMisconfigured"] >= 3
    assert "CacheUnavailable" not in metrics.counts


@pytest.mark.parametrize(
    "key_id", ["alias/no-such-key", "arn:aws:kms:us-east-1:123456789012:key/" + "0" * 36]
)
def test_a_kms_key_that_does_not_exist_is_misconfiguration(
    make_vendor: Any, fresh_stack: LocalStack, caplog: pytest.LogCaptureFixture, key_id: str
) -> None:
    metrics = Recorder()
    vendor = make_vendor(metrics=metrics, TOKEN_CACHE_KEY_ID=key_id)
    with caplog.at_level(logging.ERROR, logger="token_vendor"):
        first = vendor.vend(direct("fr:idm:*"), budget())

    assert first.tier == "minted"  # still served
    assert metrics.counts["CacheMisconfigured"] >= 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].cache_key_id == key_id  # type: ignore[attr-defined]
    assert "NotFoundException" in errors[0].reason  # type: ignore[attr-defined]


class _Unresolvable:
    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise urllib3.exceptions.NameResolutionError(
            "openam-typo.id.forgerock.io", None, OSError("no such host")
        )  # type: ignore[arg-type]


def test_a_host_that_does_not_resolve_is_named_with_the_setting(make_vendor: Any) -> None:
    endpoint = TokenEndpoint(
        "https://openam-typo.id.forgerock.io/am/oauth2/access_token",
        pool=_Unresolvable(),
        sleep=lambda s: None,
    )
    with pytest.raises(
        UpstreamUnavailable, match=r"openam-typo\.id\.forgerock\.io does not resolve.*TENANT_FQDN"
    ):
        make_vendor(endpoint=endpoint).vend(direct("fr:idm:*"), budget())
