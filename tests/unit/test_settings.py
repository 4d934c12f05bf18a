from __future__ import annotations

import pytest

from token_vendor.kernel.errors import ConfigurationError
from token_vendor.kernel.settings import load_settings

BASE = {
    "TENANT_FQDN": "openam-example-ew2.id.forgerock.io",
    "SERVICE_ACCOUNT_SECRET_ID": "aic/service-account",
    "TOKEN_CACHE_TABLE": "token-cache",
}


def test_defaults_follow_the_contract() -> None:
    settings = load_settings(BASE)

    assert settings.token_endpoint_url == "https://openam-example-ew2.id.forgerock.io/am/oauth2/access_token"
    assert (
        settings.assertion_audience == "https://openam-example-ew2.id.forgerock.io:443/am/oauth2/access_token"
    )
    assert settings.min_validity_seconds == 120
    assert settings.refresh_ahead_seconds == 300
    assert settings.allowed_scopes is None
    assert dict(settings.caller_policy) == {}
    assert settings.cache_key_id is None


def test_overrides_are_read() -> None:
    settings = load_settings(
        {
            **BASE,
            "TOKEN_ENDPOINT_URL": "http://127.0.0.1:8080/am/oauth2/access_token",
            "ALLOWED_SCOPES": "fr:idm:* fr:am:*",
            "CALLER_POLICY": '{"arn:aws:iam::111122223333:role/app-*": ["fr:idm:*"]}',
            "MIN_VALIDITY_SECONDS": "60",
            "REFRESH_AHEAD_SECONDS": "0",
            "TOKEN_CACHE_KEY_ID": "alias/token-cache",
        }
    )

    assert settings.assertion_audience == "http://127.0.0.1:8080/am/oauth2/access_token"
    assert settings.allowed_scopes == frozenset({"fr:idm:*", "fr:am:*"})
    assert dict(settings.caller_policy) == {"arn:aws:iam::111122223333:role/app-*": ("fr:idm:*",)}
    assert (settings.min_validity_seconds, settings.refresh_ahead_seconds) == (60, 0)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"TENANT_FQDN": ""}, "TENANT_FQDN"),
        ({"TENANT_FQDN": "https://tenant.example.com"}, "TENANT_FQDN"),
        ({"TENANT_FQDN": "tenant.example.com/am"}, "TENANT_FQDN"),
        ({"TENANT_FQDN": "tenant.example.com:443"}, "TENANT_FQDN"),
        ({"TENANT_FQDN": "localhost"}, "TENANT_FQDN"),
        ({"SERVICE_ACCOUNT_SECRET_ID": " "}, "SERVICE_ACCOUNT_SECRET_ID"),
        ({"TOKEN_CACHE_TABLE": "a b"}, "TOKEN_CACHE_TABLE"),
        ({"TOKEN_ENDPOINT_URL": "http://tenant.example.com/am/oauth2/access_token"}, "TOKEN_ENDPOINT_URL"),
        ({"TOKEN_ENDPOINT_URL": "ftp://x/y"}, "TOKEN_ENDPOINT_URL"),
        ({"ASSERTION_AUDIENCE": "not a url"}, "ASSERTION_AUDIENCE"),
        ({"MIN_VALIDITY_SECONDS": "-1"}, "MIN_VALIDITY_SECONDS"),
        ({"MIN_VALIDITY_SECONDS": "900"}, "MIN_VALIDITY_SECONDS"),
        ({"REFRESH_AHEAD_SECONDS": "soon"}, "REFRESH_AHEAD_SECONDS"),
        ({"ALLOWED_SCOPES": "caf\u00e9"}, "ALLOWED_SCOPES"),
        ({"CALLER_POLICY": "{not json"}, "CALLER_POLICY"),
        ({"CALLER_POLICY": "[]"}, "CALLER_POLICY"),
        ({"CALLER_POLICY": '{"role/x": ["fr:idm:*"]}'}, "CALLER_POLICY"),
        ({"CALLER_POLICY": '{"arn:aws:iam::1:role/x": "fr:idm:*"}'}, "CALLER_POLICY"),
    ],
)
def test_a_bad_setting_names_its_variable(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**BASE, **overrides})

    assert caught.value.message.startswith(f"setting {variable} ")
    assert "\n" not in caught.value.message


def test_a_pasted_secret_in_a_setting_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**BASE, "CALLER_POLICY": '{"d": "c2VjcmV0LWtleS1tYXRlcmlhbA"}'})
    assert "c2VjcmV0" not in caught.value.message


def test_direct_invoke_scopes_unset_means_every_direct_call_is_denied() -> None:
    assert load_settings(BASE).direct_invoke_scopes is None
    assert load_settings({**BASE, "DIRECT_INVOKE_SCOPES": "  "}).direct_invoke_scopes is None
    assert load_settings({**BASE, "DIRECT_INVOKE_SCOPES": "fr:idm:* fr:am:*"}).direct_invoke_scopes == (
        "fr:idm:*",
        "fr:am:*",
    )


def test_seconds_settings_take_ascii_digits_only() -> None:
    with pytest.raises(ConfigurationError, match="MIN_VALIDITY_SECONDS"):
        load_settings({**BASE, "MIN_VALIDITY_SECONDS": "\u00b2"})
    assert load_settings({**BASE, "MIN_REFRESH_INTERVAL_SECONDS": "0"}).min_refresh_interval_seconds == 0
