"""``make run``: start the local stack, vend a token, use it, and keep serving until Ctrl-C.

Set ``TOKEN_VENDOR_DEMO_QUIET=0`` to see the function's own JSON log lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import urllib.request
from typing import Any

from local.lambda_context import LocalContext
from local.stack import LocalStack, start_stack


def _use_token(stack: LocalStack, access_token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback URL of the stand-in
        stack.standin.base_url + "/openidm/managed/alpha_user?_queryFilter=true",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        body: dict[str, Any] = json.load(response)
    return int(body["resultCount"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit after the demo")
    args = parser.parse_args(argv)

    stack = start_stack()
    os.environ.update(stack.function_env())
    if os.environ.get("TOKEN_VENDOR_DEMO_QUIET", "1") == "1":
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        logging.getLogger("token_vendor").setLevel(logging.WARNING)
    import app  # after the environment points at the local stack
    from cached_token import fingerprint

    print("local stack up:")
    print(f"  AWS (moto)         {stack.aws.endpoint}")
    print(f"  AIC stand-in       {stack.standin.token_url}")
    print(f"  service account    {stack.account_id} (key generated, stored in Secrets Manager)")
    scope = "fr:idm:*"
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
    sys.stdout.flush()

    if args.once:
        stack.stop()
        return 0
    print("\nserving until Ctrl-C (the endpoints above stay up)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping")
    stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
