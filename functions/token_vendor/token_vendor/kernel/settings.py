"""Lambda environment settings (CONTRACT section 2), read and validated once per cold start.

Every problem names the variable and what is wrong with it, and never echoes a value that could be
sensitive (none of these should be, but a pasted key in the wrong variable must not reach the log).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from token_vendor.kernel.errors import ConfigurationError, InvalidScope
from token_vendor.kernel.partitions import sts_endpoint
from token_vendor.kernel.scopes import Scopes, normalise_scopes

MAX_VALIDITY_SECONDS = 840  # AIC tokens live 899 s; leave a minute for the caller to use one

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_SCOPE_GLOB = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,128}")


@dataclass(frozen=True)
class Settings:
    tenant_fqdn: str
    secret_id: str | None  # None only in the keyless mode (signing_key_id set)
    table_name: str
    token_endpoint_url: str
    assertion_audience: str
    cache_key_id: str | None = None
    allowed_scopes: frozenset[str] | None = None
    caller_policy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    min_validity_seconds: int = 120
    refresh_ahead_seconds: int = 300
    service_account_id: str | None = None
    # Scope globs direct invokers and Step Functions tasks may obtain; None: every direct call is denied.
    direct_invoke_scopes: tuple[str, ...] | None = None
    min_refresh_interval_seconds: int = 30
    # A direct invoker's identity proof must carry this audience and be addressed to this STS endpoint.
    identity_audience: str = "token-vendor"
    sts_endpoint_url: str = "https://sts.us-east-1.amazonaws.com/"
    keep_warm_seconds: int = 3600
    # Keyless: the KMS key (id, ARN or alias) that signs assertions; no private key in the function.
    signing_key_id: str | None = None


def _fail(variable: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"setting {variable} {problem}")


def _required(env: Mapping[str, str], variable: str) -> str:
    value = env.get(variable, "").strip()
    if not value:
        raise _fail(variable, "is required and is missing or empty")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_tenant_fqdn(value: str) -> str:
    if "://" in value or "/" in value or ":" in value:
        raise _fail("TENANT_FQDN", "must be a bare host name (no scheme, path or port)")
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_HOST_LABEL.fullmatch(x) for x in labels):
        raise _fail("TENANT_FQDN", "is not a valid host name")
    return value.rstrip(".").lower()


def parse_endpoint_url(variable: str, value: str) -> str:
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise _fail(variable, "must be an https:// URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise _fail(variable, "may use http:// only for a loopback host; use https://")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise _fail(variable, "must not carry a query, fragment or credentials")
    return value


def with_explicit_port(url: str) -> str:
    """AIC's docs put the port in the audience (``https://host:443/am/oauth2/access_token``)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", ""))


def _seconds(env: Mapping[str, str], variable: str, default: int) -> int:
    # ASCII digits only: str.isdigit() would let '²' through to int(), which then fails.
    raw = env.get(variable, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]{1,4}", raw):
        raise _fail(variable, f"must be a whole number of seconds from 0 to {MAX_VALIDITY_SECONDS}")
    value = int(raw)
    if value > MAX_VALIDITY_SECONDS:
        raise _fail(variable, f"must be at most {MAX_VALIDITY_SECONDS} (AIC tokens live 899 seconds)")
    return value


def _allowed_scopes(env: Mapping[str, str]) -> frozenset[str] | None:
    raw = env.get("ALLOWED_SCOPES", "").strip()
    if not raw:
        return None
    try:
        scopes: Scopes = normalise_scopes(raw)
    except InvalidScope as exc:
        raise _fail("ALLOWED_SCOPES", f"is malformed: {exc.message}") from exc
    return frozenset(scopes)


def _direct_invoke_scopes(env: Mapping[str, str]) -> tuple[str, ...] | None:
    raw = env.get("DIRECT_INVOKE_SCOPES", "").strip()
    if not raw:
        return None  # deny by default: lambda:InvokeFunction is often granted on "*"
    globs = raw.split()
    for glob in globs:
        if not _SCOPE_GLOB.fullmatch(glob):
            raise _fail(
                "DIRECT_INVOKE_SCOPES",
                "must be space-separated scope globs (printable ASCII without '\"' or '\\'; '*' for any)",
            )
    return tuple(globs)


def parse_caller_policy(raw: str) -> dict[str, tuple[str, ...]]:
    """``CALLER_POLICY``: a JSON object, principal ARN glob -> list of scope globs."""
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _fail("CALLER_POLICY", f"is not valid JSON ({exc.msg} at character {exc.pos})") from exc
    if not isinstance(document, dict):
        raise _fail("CALLER_POLICY", "must be a JSON object of principal ARN glob -> list of scope globs")
    policy: dict[str, tuple[str, ...]] = {}
    for arn_glob, scope_globs in document.items():
        if not arn_glob.startswith("arn:"):
            raise _fail("CALLER_POLICY", f"has a key that is not an ARN glob (entry #{len(policy) + 1})")
        if not isinstance(scope_globs, list) or not all(
            isinstance(s, str) and s.strip() for s in scope_globs
        ):
            raise _fail("CALLER_POLICY", f"entry {arn_glob} must map to a list of scope globs")
        policy[arn_glob] = tuple(scope_globs)
    return policy


def load_settings(env: Mapping[str, str]) -> Settings:
    tenant = parse_tenant_fqdn(_required(env, "TENANT_FQDN"))
    signing_key_id = env.get("SIGNING_KEY_ID", "").strip() or None
    # Keyless needs no secret; the account is then named by SERVICE_ACCOUNT_ID (checked below).
    secret_id = env.get("SERVICE_ACCOUNT_SECRET_ID", "").strip() or None
    if secret_id is None and signing_key_id is None:
        secret_id = _required(env, "SERVICE_ACCOUNT_SECRET_ID")
    table = _required(env, "TOKEN_CACHE_TABLE")
    if not _TABLE_NAME.fullmatch(table):
        raise _fail("TOKEN_CACHE_TABLE", "is not a valid DynamoDB table name")
    endpoint_raw = env.get("TOKEN_ENDPOINT_URL", "").strip()
    endpoint = (
        parse_endpoint_url("TOKEN_ENDPOINT_URL", endpoint_raw)
        if endpoint_raw
        else f"https://{tenant}/am/oauth2/access_token"
    )
    audience_raw = env.get("ASSERTION_AUDIENCE", "").strip()
    audience = (
        parse_endpoint_url("ASSERTION_AUDIENCE", audience_raw)
        if audience_raw
        else with_explicit_port(endpoint)
    )
    account_id = env.get("SERVICE_ACCOUNT_ID", "").strip() or None
    if signing_key_id is not None and account_id is None:
        raise _fail("SERVICE_ACCOUNT_ID", "is required when SIGNING_KEY_ID is set (keyless signing)")
    sts_raw = env.get("STS_ENDPOINT_URL", "").strip()
    region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip() or "us-east-1"
    # The region's partition (botocore's data) gives STS's domain: .amazonaws.com.cn, .amazonaws.eu, ...
    regional_sts = sts_endpoint(region)
    if regional_sts is None:
        raise _fail("AWS_REGION", "is not a region of any AWS partition this botocore knows")
    sts = parse_endpoint_url("STS_ENDPOINT_URL", sts_raw) if sts_raw else regional_sts
    identity_audience = (
        env.get("IDENTITY_AUDIENCE", "").strip()
        or env.get("AWS_LAMBDA_FUNCTION_NAME", "").strip()
        or "token-vendor"
    )
    if not re.fullmatch(r"[\x21-\x7e]{1,256}", identity_audience):
        raise _fail("IDENTITY_AUDIENCE", "must be 1 to 256 printable ASCII characters without spaces")
    return Settings(
        tenant_fqdn=tenant,
        secret_id=secret_id,
        table_name=table,
        token_endpoint_url=endpoint,
        assertion_audience=audience,
        cache_key_id=env.get("TOKEN_CACHE_KEY_ID", "").strip() or None,
        allowed_scopes=_allowed_scopes(env),
        caller_policy=parse_caller_policy(env.get("CALLER_POLICY", "")),
        min_validity_seconds=_seconds(env, "MIN_VALIDITY_SECONDS", 120),
        refresh_ahead_seconds=_seconds(env, "REFRESH_AHEAD_SECONDS", 300),
        service_account_id=account_id,
        direct_invoke_scopes=_direct_invoke_scopes(env),
        min_refresh_interval_seconds=_seconds(env, "MIN_REFRESH_INTERVAL_SECONDS", 30),
        identity_audience=identity_audience,
        sts_endpoint_url=sts,
        keep_warm_seconds=_keep_warm(env),
        signing_key_id=signing_key_id,
    )


def _keep_warm(env: Mapping[str, str]) -> int:
    raw = env.get("KEEP_WARM_SECONDS", "").strip()
    if not raw:
        return 3600
    if not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) > 86_400:
        raise _fail("KEEP_WARM_SECONDS", "must be a whole number of seconds from 0 to 86400 (0 turns it off)")
    return int(raw)


@dataclass(frozen=True)
class Egress:
    """How the function's own HTTP calls (token endpoint, STS) leave, read as botocore reads it.

    ``proxies`` has ``urllib.request.getproxies()``'s shape (scheme -> proxy URL, ``"no"`` -> NO_PROXY)
    so that ``urllib.request.proxy_bypass_environment`` applies NO_PROXY exactly as botocore does;
    ``ca_bundle`` (AWS_CA_BUNDLE) replaces the system's trust store, as it does for botocore.
    """

    proxies: Mapping[str, str] = field(default_factory=dict)
    ca_bundle: str | None = None


def _usable_bundle(path: str) -> bool:
    """Loads as OpenSSL will at the first TLS call: a truncated or wrong file fails the cold start, not
    every exchange as an unnamed, retried connection failure."""
    import ssl

    try:
        return os.path.isfile(path) and ssl.create_default_context(cafile=path).cert_store_stats()["x509"] > 0
    except (ssl.SSLError, OSError, ValueError):
        return False


def load_egress(env: Mapping[str, str]) -> Egress:
    """HTTPS_PROXY / https_proxy / HTTP_PROXY / NO_PROXY (lower case wins) and AWS_CA_BUNDLE (CONTRACT 2)."""
    proxies: dict[str, str] = {}
    for name, value in env.items():  # urllib.request.getproxies_environment, on an explicit mapping
        if value and name.lower()[-6:] == "_proxy":
            proxies[name.lower()[:-6]] = value
    for name, value in env.items():
        if name[-6:] == "_proxy":
            if value:
                proxies[name[:-6]] = value
            else:
                proxies.pop(name[:-6], None)
    proxies = {k: v.strip() for k, v in proxies.items() if k in ("http", "https", "no")}
    for scheme in ("http", "https"):
        if scheme in proxies:
            parts = urlsplit(proxies[scheme] if "://" in proxies[scheme] else "http://" + proxies[scheme])
            if parts.scheme not in ("http", "https") or not parts.hostname:
                # never echo the value: a proxy URL may carry a password
                raise _fail(
                    f"{scheme.upper()}_PROXY", "must be a proxy URL such as http://proxy.internal:3128"
                )
            proxies[scheme] = urlunsplit(parts)
    ca_bundle = env.get("AWS_CA_BUNDLE", "").strip() or None
    if ca_bundle is not None and not _usable_bundle(ca_bundle):
        raise _fail("AWS_CA_BUNDLE", "must name a readable PEM file of trusted CA certificates")
    return Egress(proxies, ca_bundle)
