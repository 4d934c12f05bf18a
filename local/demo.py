"""``make run``: start the local stack, vend a token, use it, and keep serving until Ctrl-C.

Set ``TOKEN_VENDOR_DEMO_QUIET=0`` to see the function's own JSON log lines.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from local.api_front import ApiFront
from local.lambda_context import LocalContext
from local.stack import REPORTING_ROLE, LocalStack, local_identities, signing_session, start_stack


def _use_token(stack: LocalStack, access_token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback URL of the stand-in
        stack.standin.base_url + "/openidm/managed/alpha_user?_queryFilter=true",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        body: dict[str, Any] = json.load(response)
    return int(body["resultCount"])


def _cli_header(url: str, identity: Any) -> str:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit after the demo")
    args = parser.parse_args(argv)

    stack = start_stack()
    os.environ.update(stack.function_env(CALLER_POLICY=json.dumps({REPORTING_ROLE: ["fr:idm:*"]})))
    if os.environ.get("TOKEN_VENDOR_DEMO_QUIET", "1") == "1":
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        logging.getLogger("token_vendor").setLevel(logging.WARNING)
    import app  # after the environment points at the local stack
    import observability
    from cached_token import fingerprint

    audit_log = open(os.devnull, "w") if os.environ.get("TOKEN_VENDOR_DEMO_QUIET", "1") == "1" else None  # noqa: SIM115
    observability.set_output(audit_log)

    print("local stack up:")
    print(f"  AWS (moto)         {stack.aws.endpoint}")
    print(f"  AIC stand-in       {stack.standin.token_url}")
    print(f"  service account    {stack.account_id} (key generated, stored in Secrets Manager)")
    scope = "fr:idm:*"
    quiet = os.environ.get("TOKEN_VENDOR_DEMO_QUIET", "1") == "1"
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        started = time.perf_counter()
        result = app.lambda_handler({"scope": scope}, LocalContext())
        first_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        again = app.lambda_handler({"scopes": [scope]}, LocalContext())
        second_ms = (time.perf_counter() - started) * 1000
    users = _use_token(stack, result["access_token"])

    print('\ndirect invocation {"scope": "fr:idm:*"}:')
    print(f"  token fingerprint  {fingerprint(result['access_token'])}  (the token itself is never printed)")
    print(f"  scope              {result['scope']}")
    print(f"  seconds left       {result['expires_in']}")
    print(f"  first vend         {first_ms:.1f} ms (minted at the stand-in)")
    print(
        f"  second vend        {second_ms:.2f} ms (memory cache; same token: "
        f"{again['access_token'] == result['access_token']})"
    )
    print(f"  exchanges at AIC   {stack.standin.exchanges}")
    print(f"\nGET /openidm/managed/alpha_user with the token: {users} users returned")

    identities = local_identities()
    reporting = identities["ASIALOCALREPORTING01"]
    front = ApiFront(app.lambda_handler, identities).start()
    from token_client import HttpTransport, TokenClient

    client = TokenClient(HttpTransport(front.token_url, session=signing_session(reporting)))
    over_http = client.get_token("fr:idm:*")
    print(f"\nsigned HTTP (SigV4, role {REPORTING_ROLE}) through the local API front {front.token_url}:")
    print(
        f"  TokenClient        fingerprint {fingerprint(over_http.access_token)}, same token as above: "
        f"{over_http.access_token == result['access_token']}"
    )
    cli = _cli_header(front.token_url, reporting)
    print(f"  CLI --header       {cli}")
    print(f"  exchanges at AIC   {stack.standin.exchanges} (every caller above shared one token)")
    sys.stdout.flush()

    if args.once:
        front.stop()
        stack.stop()
        return 0
    print("\nserving until Ctrl-C. Try the CLI as the local 'reporting' role from another shell:")
    print(f"  AWS_ACCESS_KEY_ID={reporting.access_key} AWS_SECRET_ACCESS_KEY={reporting.secret_key} \\")
    print(f"  AWS_SESSION_TOKEN={reporting.session_token} AWS_DEFAULT_REGION=us-east-1 \\")
    print("  PYTHONPATH=layers/token_client/python .venv/bin/python -m token_client \\")
    print(f"    --scope 'fr:idm:*' --url {front.token_url} --header")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping")
    front.stop()
    stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
