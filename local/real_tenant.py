"""``make run`` against a real tenant instead of the stand-in (on purpose: this leaves the machine).

``AIC_TENANT_FQDN``, ``AIC_SERVICE_ACCOUNT_ID`` and ``AIC_KEY_FILE`` (the downloaded ``key.jwk``); optionally
``AIC_TOKEN_ENDPOINT_URL``. Checked before anything starts, with one line for each mistake; the key goes into
the local Secrets Manager only.
"""

from __future__ import annotations

import json
import os
import urllib.error
from typing import Any

from local.stack import LocalStack


class DemoSetupError(Exception):
    """A real-tenant setting is missing or wrong: one line for the user, no traceback."""


def tenant_settings(
    environ: dict[str, str] | os._Environ[str],
) -> tuple[str, str, dict[str, Any], str] | None:
    """Check the real-tenant variables before anything starts; None when the user asked for none."""
    tenant = environ.get("AIC_TENANT_FQDN", "").strip()
    if not tenant:
        return None
    from token_vendor.kernel.settings import load_settings

    account = environ.get("AIC_SERVICE_ACCOUNT_ID", "").strip()
    key_file = environ.get("AIC_KEY_FILE", "").strip()
    if not account or not key_file:
        missing = [n for n, v in (("AIC_SERVICE_ACCOUNT_ID", account), ("AIC_KEY_FILE", key_file)) if not v]
        raise DemoSetupError(f"AIC_TENANT_FQDN is set, so {' and '.join(missing)} must be set too")
    token_url = (
        environ.get("AIC_TOKEN_ENDPOINT_URL", "").strip() or f"https://{tenant}/am/oauth2/access_token"
    )
    try:
        load_settings(
            {
                "TENANT_FQDN": tenant,
                "TOKEN_ENDPOINT_URL": token_url,
                "SERVICE_ACCOUNT_SECRET_ID": "check",
                "TOKEN_CACHE_TABLE": "check",
            }
        )
    except Exception as exc:  # the vendor's own check: a URL, a path or a port in AIC_TENANT_FQDN
        message = (
            str(exc)
            .replace("TENANT_FQDN", "AIC_TENANT_FQDN")
            .replace("TOKEN_ENDPOINT_URL", "AIC_TOKEN_ENDPOINT_URL")
        )
        raise DemoSetupError(message) from None
    try:
        with open(key_file) as handle:
            jwk = json.load(handle)
    except OSError as exc:
        raise DemoSetupError(f"AIC_KEY_FILE {key_file}: {exc.strerror}") from None
    except ValueError:
        raise DemoSetupError(
            f"AIC_KEY_FILE {key_file} is not JSON (the key.jwk the AIC console downloads)"
        ) from None
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or "d" not in jwk:
        raise DemoSetupError(f"AIC_KEY_FILE {key_file} is not an RSA private JWK (the console's key.jwk)")
    return tenant, account, jwk, token_url


def real_tenant(
    stack: LocalStack, settings: tuple[str, str, dict[str, Any], str] | None
) -> tuple[dict[str, str], str, str] | None:
    """Function settings, token URL and IDM base for a real tenant, when the user asked for one."""
    if settings is None:
        return None
    tenant, account, jwk, token_url = settings
    stack.put_secret(json.dumps({"serviceAccountId": account, "jwk": jwk}))
    overrides = {"TENANT_FQDN": tenant, "TOKEN_ENDPOINT_URL": token_url}
    return overrides, token_url, token_url.split("/am/oauth2/")[0]


def one_line(failure: Exception) -> str:
    """A vend or IDM failure against a real tenant as one line with what to check (never a traceback)."""
    if isinstance(failure, urllib.error.HTTPError):
        hint = {
            401: "AIC refused the token (is the service account active?)",
            403: "the token lacks a scope IDM needs (give the service account fr:idm:*)",
        }.get(failure.code, "IDM refused the request")
        return f"GET /openidm/managed/alpha_user answered HTTP {failure.code}: {hint}"
    if isinstance(failure, urllib.error.URLError):
        return f"cannot reach the tenant's IDM ({failure.reason}); check AIC_TENANT_FQDN and the network"
    name = type(failure).__name__
    detail = " ".join(str(failure).split())[:300]
    hints = {
        "UpstreamRejected": "AIC refused the assertion: check AIC_SERVICE_ACCOUNT_ID and the key",
        "UpstreamUnavailable": "AIC did not answer: check AIC_TENANT_FQDN and the network",
        "InvalidScope": "the service account may not have fr:idm:* (add it to the account in AIC)",
    }
    return f"{name}: {detail}" + (f" ({hints[name]})" if name in hints else "")
