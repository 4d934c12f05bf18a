"""Issue 31: the function's own HTTP calls leave as botocore's do (HTTPS_PROXY, NO_PROXY, AWS_CA_BUNDLE)."""

from __future__ import annotations

from pathlib import Path

import botocore.utils
import certifi
import pytest

from token_vendor.adapters.http.bounded_http import proxy_for
from token_vendor.kernel.errors import ConfigurationError
from token_vendor.kernel.settings import load_egress


def test_lower_case_wins_and_an_empty_lower_case_turns_the_proxy_off() -> None:
    assert (
        load_egress({"HTTPS_PROXY": "http://a:1", "https_proxy": "http://b:2"}).proxies["https"]
        == "http://b:2"
    )
    assert "https" not in load_egress({"HTTPS_PROXY": "http://a:1", "https_proxy": ""}).proxies
    assert load_egress({"NO_PROXY": ".internal"}).proxies == {"no": ".internal"}


def test_a_bad_proxy_names_the_variable_and_never_echoes_its_value() -> None:
    with pytest.raises(ConfigurationError, match="HTTPS_PROXY") as caught:
        load_egress({"HTTPS_PROXY": "ftp://user:hunter2@proxy:21"})
    assert "hunter2" not in caught.value.message


def test_a_ca_bundle_that_is_not_a_file_fails_the_cold_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="AWS_CA_BUNDLE"):
        load_egress({"AWS_CA_BUNDLE": str(tmp_path / "missing.pem")})
    bundle = certifi.where()  # a real bundle of PEM certificates
    assert load_egress({"AWS_CA_BUNDLE": bundle}).ca_bundle == bundle


@pytest.mark.parametrize("content", ["-----BEGIN CERTIFICATE-----\n", "not a certificate\n", ""])
def test_a_ca_bundle_with_no_usable_certificate_fails_the_cold_start(tmp_path: Path, content: str) -> None:
    """A truncated or wrong file would otherwise pass the cold start and make every exchange and STS call
    fail as an unnamed, retried "connection failed (SSLError)"."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text(content)
    with pytest.raises(ConfigurationError, match="AWS_CA_BUNDLE"):
        load_egress({"AWS_CA_BUNDLE": str(bundle)})


URLS = [
    "https://openam-example.id.forgerock.io/am/oauth2/access_token",
    "https://sts.eu-west-1.amazonaws.com/",
    "https://sts.eu-west-1.amazonaws.com:443/",
    "http://127.0.0.1:8080/am/oauth2/access_token",
]
NO_PROXY = [
    "",
    "*",
    "forgerock.io",
    ".forgerock.io",
    "amazonaws.com",
    "sts.eu-west-1.amazonaws.com:443",
    "127.0.0.1",
    "localhost, .id.forgerock.io",
    "example.com",
]


@pytest.mark.parametrize("no_proxy", NO_PROXY)
def test_the_proxy_is_chosen_as_botocore_chooses_it(no_proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"HTTPS_PROXY": "http://proxy.internal:3128", "HTTP_PROXY": "http://proxy.internal:3129"}
    if no_proxy:
        env["NO_PROXY"] = no_proxy
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proxies = load_egress(env).proxies
    for url in URLS:
        scheme = url.split(":")[0]
        expected = (
            None
            if botocore.utils.should_bypass_proxies(url)
            else botocore.utils.get_environ_proxies(url).get(scheme)
        )
        assert proxy_for(url, proxies) == expected, url
