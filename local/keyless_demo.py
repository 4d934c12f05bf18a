"""``make run KEYLESS=1``: the keyless mode on the local stack (issue 35).

A token minted with no private key in the function (the key is an RSA_2048 key in moto's KMS; the
function has no secret to read), used against the stand-in's IDM; then ``aic-token rotate`` moves the
fleet to a second KMS key under load, and ``--finish`` retires the first, with no vend failing.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local.aws import LOCAL_AWS_ENV
from local.keyless import SIGNING_ALIAS, enrol_keyless, keyless_env, public_keys
from local.lambda_context import LocalContext
from local.lambda_invoke import LocalLambda
from local.stack import LocalStack, start_stack

REPO = Path(__file__).resolve().parents[1]


def _held(root: object) -> Iterator[object]:
    """What an object holds, through its collaborators and closures (not module globals)."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        item = pending.pop()
        if id(item) in seen or isinstance(item, (type, types.ModuleType)):
            continue
        seen.add(id(item))
        yield item
        pending.extend(
            (item.__closure__ or ()) if isinstance(item, types.FunctionType) else gc.get_referents(item)
        )


def _users_listed(idm_base: str, access_token: str) -> int:
    """What the stand-in's IDM answers the token (as make run's story uses it)."""
    import json
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - the local stand-in
        idm_base + "/openidm/managed/alpha_user?_queryFilter=true&_pageSize=3&_fields=userName",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return int(json.load(response)["resultCount"])


def _private_keys_in(vendor: object) -> int:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return sum(isinstance(o, rsa.RSAPrivateKey) for o in _held(vendor))


def _rotate(stack: LocalStack, service: LocalLambda, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_ENV)
    env.update(AWS_ENDPOINT_URL_LAMBDA=service.endpoint, AWS_ENDPOINT_URL_KMS=stack.aws.endpoint)
    env["AIC_ADMIN_TOKEN"] = stack.standin.admin_token
    command = [sys.executable, "-m", "token_client", "rotate", "--function", "token-vendor-rotation",
               "--idm-url", stack.standin.base_url, *args]  # fmt: skip
    done = subprocess.run(  # noqa: S603 - this interpreter and the repository's own CLI
        command, capture_output=True, text=True, env=env, timeout=120, check=False, cwd=REPO
    )
    return done.stdout + done.stderr


def _under_load(stack: LocalStack, work: Any) -> tuple[int, list[str]]:
    """Run ``work`` while a loop of cold containers (each its first vend: a kms:Sign) keeps vending."""
    from token_vendor import app

    vends, failures, stop = [0], [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            app.reset_runtime()  # a cold container: it resolves the alias and signs anew
            table = stack.client("dynamodb")
            for item in table.scan(TableName=stack.table_name).get("Items", []):
                table.delete_item(TableName=stack.table_name, Key={"pk": item["pk"]})
            try:
                app.lambda_handler({"scope": "fr:idm:*"}, LocalContext())
                vends[0] += 1
            except Exception as exc:
                failures.append(type(exc).__name__)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        work()
    finally:
        stop.set()
        worker.join(30)
    return vends[0], failures


def _keyless_vend(stack: LocalStack) -> None:
    """One vend by the vendor exactly as the function wires it (runtime.build_vendor), and what it holds."""
    from token_vendor.kernel.cached_token import fingerprint
    from token_vendor.kernel.deadline import Deadline
    from token_vendor.kernel.scopes import normalise_scopes
    from token_vendor.kernel.settings import load_settings
    from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest
    from token_vendor.wiring import build_vendor

    vendor = build_vendor(load_settings(os.environ))
    request = VendRequest(normalise_scopes("fr:idm:*"), None, DIRECT_CALLER)
    token = vendor.vend(request, Deadline.after(10.0, time.monotonic)).token
    print('\na vend {"scope": "fr:idm:*"}, the assertion signed by kms:Sign:')
    print(f"  token fingerprint  {fingerprint(token.access_token)}  (the token itself is never printed)")
    print(f"  SERVICE_ACCOUNT_SECRET_ID  {os.environ.get('SERVICE_ACCOUNT_SECRET_ID', '(not set)')}")
    print(f"  key in use         {token.key_version}")
    print(f"  private keys held by the function: {_private_keys_in(vendor)}")
    users = _users_listed(stack.standin.base_url, token.access_token)
    print(f"  GET /openidm/managed/alpha_user with the token: {users} users")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit after the demo")
    args = parser.parse_args(argv)
    stack = start_stack()
    first = enrol_keyless(stack)
    os.environ.update(keyless_env(stack, DIRECT_INVOKE_SCOPES="fr:idm:*"))
    os.environ.pop("SERVICE_ACCOUNT_SECRET_ID", None)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    logging.getLogger("token_vendor").setLevel(logging.WARNING)
    from token_vendor.kernel import observability
    from token_vendor.rotation import rotation_handler

    observability.set_output(open(os.devnull, "w"))  # noqa: SIM115 - the audit lines, for the demo's whole life
    print("local stack up (keyless):")
    print(f"  AWS (moto)         {stack.aws.endpoint}")
    print(f"  AIC stand-in       {stack.standin.token_url}")
    print(f"  signing key        {first.arn} (RSA_2048, SIGN_VERIFY) behind {SIGNING_ALIAS}")
    print(f"  AIC lists          kid {first.public_jwk['kid']} (the RFC 7638 thumbprint of its public key)")
    _keyless_vend(stack)

    service = LocalLambda({"token-vendor-rotation": rotation_handler}).start()
    print("\naic-token rotate (a second KMS key) while cold containers keep vending:")
    steps: list[str] = []

    def rotation() -> None:
        steps.append(_rotate(stack, service))
        time.sleep(0.5)
        steps.append(_rotate(stack, service, "--finish"))
        time.sleep(0.5)

    vends, failures = _under_load(stack, rotation)
    for line in "".join(steps).splitlines():
        print(f"  {line}")
    print(f"  vends during the rotation: {vends}, failed: {len(failures)}")
    print(f"  AIC lists          kid {', '.join(str(k.get('kid')) for k in public_keys(stack))}")
    service.stop()
    if not args.once:
        print("\nserving until Ctrl-C")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    stack.stop()
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
