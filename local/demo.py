"""``make run``: start the local stack, vend a token, use it, and keep serving until Ctrl-C.

Set ``TOKEN_VENDOR_DEMO_QUIET=0`` to see the function's own JSON log lines.

To vend from a real tenant instead of the stand-in (on purpose: this leaves the machine), set
``AIC_TENANT_FQDN``, ``AIC_SERVICE_ACCOUNT_ID`` and ``AIC_KEY_FILE`` (the downloaded ``key.jwk``);
optionally ``AIC_TOKEN_ENDPOINT_URL``. The key goes into the local Secrets Manager only; AWS stays local.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from local.api_front import ApiFront
from local.aws import LOCAL_AWS_ENV
from local.lambda_context import LocalContext
from local.lambda_invoke import LocalLambda
from local.real_tenant import DemoSetupError, one_line, real_tenant, tenant_settings
from local.stack import (
    DEVELOPER_ROLE,
    REPORTING_ROLE,
    LocalStack,
    local_identities,
    signing_session,
    start_stack,
)


def _use_token(idm_base: str, access_token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - the stand-in, or the tenant the user named
        idm_base + "/openidm/managed/alpha_user?_queryFilter=true&_pageSize=3&_fields=userName",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        body: dict[str, Any] = json.load(response)
    return int(body["resultCount"])


def _cli_header(url: str, identity: Any, idm_base: str) -> str:
    """Run ``python -m token_client --header`` as a shell user would; show it without the token."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": identity.access_key,
        "AWS_SECRET_ACCESS_KEY": identity.secret_key,
        "AWS_SESSION_TOKEN": identity.session_token or "",
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "token_client", "--scope", "fr:idm:*", "--url", url, "--header"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        return f"failed (exit {result.returncode}): {result.stderr.strip()}"
    name, value = result.stdout.strip().split(": ", 1)
    request = urllib.request.Request(  # noqa: S310 - loopback
        os.environ["TOKEN_ENDPOINT_URL"].split("/am/")[0] + "/openidm/managed/alpha_user",
        headers={name: value},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        count = json.load(response)["resultCount"]
    return f"printed '{name}: Bearer <{len(value) - 7} characters>', which returned {count} users"


def _identity_story(invoke_endpoint: str, fingerprint: Any) -> None:
    """A Lambda caller that proves who it is gets its role's grant; without the proof it gets only
    DIRECT_INVOKE_SCOPES (CONTRACT section 6)."""
    from token_client import TokenClient, TokenClientError

    role = DEVELOPER_ROLE.rsplit("/", 1)[-1]
    print(f"\nidentity proof (direct invoke as role {role}, CALLER_POLICY grants it fr:idm:* fr:am:*):")
    proven = TokenClient.for_function("token-vendor", endpoint_url=invoke_endpoint).get_token("fr:am:*")
    print(
        f"  fr:am:* with proof served (sts:GetCallerIdentity checked by the local STS): "
        f"fingerprint {fingerprint(proven.access_token)}"
    )
    try:
        TokenClient.for_function(
            "token-vendor", endpoint_url=invoke_endpoint, prove_identity=False
        ).get_token("fr:am:*")
    except TokenClientError as denied:
        print(
            f"  fr:am:* no proof   raises {type(denied).__name__} (unproven: DIRECT_INVOKE_SCOPES=fr:idm:*)"
        )


def _revoke_story(stack: LocalStack, invoke_endpoint: str, idm_base: str, fingerprint: Any) -> None:
    """AIC stops honouring the shared token: callers get 401, report it, and share one fresh token."""
    from token_client import TokenClient

    callers = [TokenClient.for_function("token-vendor", endpoint_url=invoke_endpoint) for _ in range(2)]
    revoked = callers[0].get_token("fr:idm:*").access_token
    callers[1].get_token("fr:idm:*")
    before = stack.standin.exchanges
    stack.standin.revoke(revoked)
    statuses: list[int] = []

    def list_users(authorization: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the stand-in on loopback
            idm_base + "/openidm/managed/alpha_user", headers={"Authorization": authorization}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                statuses.append(response.status)
                return response
        except urllib.error.HTTPError as refused:
            statuses.append(refused.code)
            return refused

    callers[0].call("fr:idm:*", list_users)
    fresh = callers[0].get_token("fr:idm:*").access_token
    minted = stack.standin.exchanges - before
    callers[1].call("fr:idm:*", list_users)
    print(f"\nAIC revokes the shared token {fingerprint(revoked)} (the stand-in stops honouring it):")
    print(
        f"  caller 1           IDM answered {statuses[0]}; reported it (TokenClient.call); got "
        f"{fingerprint(fresh)} from {minted} exchange; IDM answered {statuses[1]}"
    )
    print(
        f"  caller 2           IDM answered {statuses[2]}; reported it; served {fingerprint(fresh)}, "
        f"{stack.standin.exchanges - before - minted} more exchanges; IDM answered {statuses[3]}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit after the demo")
    args = parser.parse_args(argv)
    try:
        asked = tenant_settings(os.environ)
    except DemoSetupError as problem:
        sys.stderr.write(f"make run: {problem}\n")
        return 2

    stack = start_stack()
    real = real_tenant(stack, asked)
    token_url = real[1] if real else stack.standin.token_url
    idm_base = real[2] if real else stack.standin.base_url
    _point_function_at(stack, real[0] if real else {})
    from token_vendor import app  # after the environment points at the local stack
    from token_vendor.kernel import observability

    audit_log = open(os.devnull, "w") if _quiet() else None  # noqa: SIM115
    observability.set_output(audit_log)

    _print_stack(stack, token_url, real is not None)
    scope = "fr:idm:*"
    try:
        result, again, first_ms, second_ms = _first_vends(app, scope)
        users = _use_token(idm_base, result["access_token"])
    except Exception as failure:
        if real is None:
            raise
        sys.stderr.write(f"make run: your tenant: {one_line(failure)}\n")
        stack.stop()
        return 1
    _print_first_vends(stack, result, again, (first_ms, second_ms), users, real is not None)
    servers = _callers_story(stack, app, result, idm_base, real is not None)
    if not args.once:
        print("\nserving until Ctrl-C")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nstopping")
    for server in servers:
        server.stop()
    stack.stop()
    return 0


def _first_vends(app: Any, scope: str) -> tuple[dict[str, Any], dict[str, Any], float, float]:
    """A mint, then a memory hit: both answers and their times in milliseconds."""
    with contextlib.redirect_stdout(io.StringIO()) if _quiet() else contextlib.nullcontext():
        started = time.perf_counter()
        result = app.lambda_handler({"scope": scope}, LocalContext())
        first_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        again = app.lambda_handler({"scopes": [scope]}, LocalContext())
        second_ms = (time.perf_counter() - started) * 1000
    return result, again, first_ms, second_ms


def _quiet() -> bool:
    return os.environ.get("TOKEN_VENDOR_DEMO_QUIET", "1") == "1"


def _point_function_at(stack: LocalStack, overrides: dict[str, str]) -> None:
    """The function's settings, in this process's environment, before the handler is imported."""
    os.environ.update(
        stack.function_env(
            # HTTP callers and Lambda callers that prove who they are get what their role is granted.
            CALLER_POLICY=json.dumps({REPORTING_ROLE: ["fr:idm:*"], DEVELOPER_ROLE: ["fr:idm:*", "fr:am:*"]}),
            DIRECT_INVOKE_SCOPES="fr:idm:*",  # direct invokers may have fr:idm:* only (deny by default)
            **overrides,
        )
    )
    if _quiet():
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        logging.getLogger("token_vendor").setLevel(logging.WARNING)


def _print_stack(stack: LocalStack, token_url: str, real: bool) -> None:
    print("local stack up:")
    print(f"  AWS (moto)         {stack.aws.endpoint}")
    if real:
        print(f"  AIC (your tenant)  {token_url}")
        account = os.environ["AIC_SERVICE_ACCOUNT_ID"].strip()
        print(f"  service account    {account} (your key, in the local Secrets Manager)")
    else:
        print(f"  AIC stand-in       {token_url}")
        print(f"  service account    {stack.account_id} (key generated, stored in Secrets Manager)")


def _print_first_vends(
    stack: LocalStack,
    result: dict[str, Any],
    again: dict[str, Any],
    times_ms: tuple[float, float],
    users: Any,
    real: bool,
) -> None:
    from token_vendor.kernel.cached_token import fingerprint

    first_ms, second_ms = times_ms
    print('\ndirect invocation {"scope": "fr:idm:*"}:')
    print(f"  token fingerprint  {fingerprint(result['access_token'])}  (the token itself is never printed)")
    print(f"  scope              {result['scope']}")
    print(f"  seconds left       {result['expires_in']}")
    print(f"  first vend         {first_ms:.1f} ms (minted at {'your tenant' if real else 'the stand-in'})")
    print(
        f"  second vend        {second_ms:.2f} ms (memory cache; same token: "
        f"{again['access_token'] == result['access_token']})"
    )
    if not real:
        print(f"  exchanges at AIC   {stack.standin.exchanges}")
    print(f"\nGET /openidm/managed/alpha_user with the token: {users} users returned")


def _callers_story(
    stack: LocalStack, app: Any, result: dict[str, Any], idm_base: str, real: bool
) -> list[ApiFront | LocalLambda]:
    """The same token through the Lambda Invoke API, signed HTTP and the CLI; then the identity and revoke
    stories (stand-in only) and how to call it yourself. Returns the servers it started, still serving."""
    from token_vendor.kernel.cached_token import fingerprint

    identities = local_identities()
    stack.sts.identities.update(identities)
    reporting = identities["ASIALOCALREPORTING01"]
    front = ApiFront(app.http_handler, identities).start()
    invoke_api = LocalLambda({"token-vendor": app.lambda_handler}).start()
    _invoke_api_story(invoke_api, result)
    _signed_http_story(front, reporting, result, idm_base)
    if not real:
        print(f"  exchanges at AIC   {stack.standin.exchanges} (every caller above shared one token)")
    sys.stdout.flush()

    if not real:  # the stand-in's account has fr:am:*; a real tenant's may not
        _identity_story(invoke_api.endpoint, fingerprint)

    if not real:
        _revoke_story(stack, invoke_api.endpoint, idm_base, fingerprint)
    sys.stdout.flush()

    url_front = ApiFront(app.http_handler, identities, function_url=True).start()
    for line in client_instructions(stack, front, url_front, invoke_api, reporting):
        print(line)
    sys.stdout.flush()
    return [invoke_api, front, url_front]


def _invoke_api_story(invoke_api: LocalLambda, result: dict[str, Any]) -> None:
    from token_client import TokenClient, TokenClientError
    from token_vendor.kernel.cached_token import fingerprint

    via_invoke = TokenClient.for_function("token-vendor", endpoint_url=invoke_api.endpoint).get_token(
        "fr:idm:*"
    )
    print(f"\nLambda Invoke API (local endpoint {invoke_api.endpoint}), function 'token-vendor':")
    print(
        f"  TokenClient.for_function fingerprint {fingerprint(via_invoke.access_token)}, same token: "
        f"{via_invoke.access_token == result['access_token']}"
    )
    try:
        TokenClient.for_function("token-vendor", endpoint_url=invoke_api.endpoint).get_token('bad"scope')
    except TokenClientError as refused:
        print(
            f"  a refused request  raises {type(refused).__name__} (Lambda's error envelope, mapped by name)"
        )


def _signed_http_story(front: ApiFront, reporting: Any, result: dict[str, Any], idm_base: str) -> None:
    from token_client import HttpTransport, TokenClient
    from token_vendor.kernel.cached_token import fingerprint

    client = TokenClient(HttpTransport(front.token_url, session=signing_session(reporting)))
    over_http = client.get_token("fr:idm:*")
    print(f"\nsigned HTTP (SigV4, role {REPORTING_ROLE}) through the local API front {front.token_url}:")
    print(
        f"  TokenClient        fingerprint {fingerprint(over_http.access_token)}, same token as above: "
        f"{over_http.access_token == result['access_token']}"
    )
    cli = _cli_header(front.token_url, reporting, idm_base)
    print(f"  CLI --header       {cli}")


def aws_cli_invoke(endpoint: str, payload_file: str, out_file: str) -> list[str]:
    """``aws lambda invoke`` against the local endpoint, in a form the aws CLI v1 and v2 both accept:
    ``fileb://`` hands the payload over as raw bytes in both (v2's ``--cli-binary-format`` is not needed)."""
    return [
        "aws",
        "lambda",
        "invoke",
        "--endpoint-url",
        endpoint,
        "--function-name",
        "token-vendor",
        "--payload",
        f"fileb://{payload_file}",
        out_file,
    ]


def client_instructions(
    stack: LocalStack, rest: ApiFront, url: ApiFront, invoke_api: LocalLambda, reporting: Any
) -> list[str]:
    """What a client outside the demo needs: endpoints, the local credentials, the cache table."""
    role = f"AWS_ACCESS_KEY_ID={reporting.access_key} AWS_SECRET_ACCESS_KEY={reporting.secret_key}"
    developer = " ".join(
        f"{k}={v}" for k, v in LOCAL_AWS_ENV.items() if k.startswith("AWS_") and "EC2" not in k
    )
    return [
        "",
        "for clients outside the demo (every endpoint checks SigV4 with the local credentials below):",
        f"  REST API front     {rest.token_url}  (service execute-api)",
        f"  function URL front {url.token_url}  (service lambda)",
        f"  Lambda Invoke API  {invoke_api.endpoint}  (function token-vendor)",
        f"  AWS (moto)         {stack.aws.endpoint}",
        f"  STS (loopback)     {stack.sts.endpoint}  (checks identity proofs)",
        f"  cache table        {stack.table_name}",
        f"  role 'reporting'   {role} AWS_SESSION_TOKEN={reporting.session_token}",
        f"  developer          {developer}",
        "as the 'reporting' role (CALLER_POLICY gives it fr:idm:*), over HTTP:",
        f"  .venv/bin/aic-token --scope 'fr:idm:*' --url {rest.token_url} --header",
        f"  .venv/bin/aic-token --scope 'fr:idm:*' --url {url.token_url} --service lambda --header",
        "as the developer (its line exported), directly with an identity proof (CALLER_POLICY), without one"
        " (DIRECT_INVOKE_SCOPES), and the shared cache:",
        f"  AWS_ENDPOINT_URL_LAMBDA={invoke_api.endpoint} AWS_ENDPOINT_URL_STS={stack.sts.endpoint} "
        ".venv/bin/aic-token --scope 'fr:idm:*' --function token-vendor",
        '  echo \'{"scope": "fr:idm:*"}\' > request.json && '
        + shlex.join(aws_cli_invoke(invoke_api.endpoint, "request.json", "out.json")),
        f"  AWS_ENDPOINT_URL={stack.aws.endpoint} .venv/bin/aic-token cache status "
        f"--table {stack.table_name}",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
