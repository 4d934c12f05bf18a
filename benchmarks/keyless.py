"""Keyless figures (issue 35), measured side by side on the local stack's KMS (moto) and AIC stand-in.

- mint in the keyless mode ÷ (a bare token POST + one bare ``kms:Sign``): what the vendor adds to the two
  round trips a keyless mint cannot avoid;
- cold start when the first vend mints, keyless (DescribeKey, GetPublicKey, Sign) against the secret mode
  (GetSecretValue, a key load, a local signature).

``make bench`` runs these rows with the rest; ``python -m benchmarks.keyless`` runs them alone and prints
them (it writes nothing).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import urllib3

from local.keyless import SIGNING_ALIAS, create_signing_key, keyless_env, point_alias, public_keys
from local.stack import LocalStack

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def keyless_rows(stack: LocalStack, repo: Any) -> None:
    from benchmarks.measure import p50, p99, record, say, side_by_side, us
    from token_vendor.kernel.deadline import Deadline
    from token_vendor.kernel.scopes import normalise_scopes
    from token_vendor.kernel.settings import load_settings
    from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest
    from token_vendor.vend.memory_cache import MemoryCache
    from token_vendor.wiring import build_vendor

    say("\nkeyless (SIGNING_KEY_ID: kms:Sign on moto's KMS; no private key in the function)")
    key = create_signing_key(stack)
    point_alias(stack, key)
    # Beside the secret's key: the other rows keep minting with it.
    stack.standin.set_keys(stack.account_id, [*public_keys(stack), key.public_jwk])
    env = keyless_env(stack)
    vendor = build_vendor(load_settings(env), memory=MemoryCache(max_entries=0))
    request = VendRequest(normalise_scopes("fr:am:*"), None, DIRECT_CALLER)
    deadline = Deadline.after(1e9, time.monotonic)
    vendor.minter.mint(request, deadline, None, None)  # resolve the alias and read the public key once
    kms = stack.client("kms")
    pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)
    header = _b64(json.dumps({"alg": "RS256", "kid": key.public_jwk["kid"], "typ": "JWT"}).encode())

    def bare_post() -> None:
        now = int(time.time())
        claims = {"iss": stack.account_id, "sub": stack.account_id, "aud": stack.standin.token_url,
                  "iat": now, "exp": now + 180, "jti": str(uuid.uuid4())}  # fmt: skip
        signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
        signature = kms.sign(KeyId=key.arn, Message=signing_input.encode(), MessageType="RAW",
                             SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"]  # fmt: skip
        body = {"client_id": "service-account", "grant_type": GRANT, "scope": "fr:am:*",
                "assertion": f"{signing_input}.{_b64(signature)}"}  # fmt: skip
        response = pool.request("POST", stack.standin.token_url, fields=body, encode_multipart=False)
        assert response.status == 200

    mints, posts, ratio = side_by_side(
        lambda: vendor.minter.mint(request, deadline, None, None), bare_post, rounds=15, n=30, warmup=3
    )
    record("keyless mint (kms:Sign, exchange), p50 / p99", f"{us(p50(mints))} / {us(p99(mints))}")
    record("bare POST to the stand-in + one bare kms:Sign, p50", us(p50(posts)))
    record("  keyless mint ÷ (bare POST + kms:Sign)", f"{ratio:.2f}×", "≤ 1.1×", ratio <= 1.1)
    _cold_mints(stack, env, repo)


def _cold_mints(stack: LocalStack, keyless: dict[str, str], repo: Any) -> None:
    from benchmarks.measure import p50, record, say, us

    say("  cold start whose first vend mints (fresh process, median of 7 interleaved pairs)")
    secret = stack.function_env()
    runs: dict[str, list[float]] = {"keyless": [], "secret": []}
    for i in range(7):
        for name, env in (("keyless", keyless), ("secret", secret)):
            scope = f"bench:s{900 + 2 * i + (name == 'secret')}"  # a set the table does not hold: a mint
            begin = time.perf_counter_ns()
            subprocess.run(
                [sys.executable, "-m", "benchmarks.cold_mint_child", scope],
                env={**os.environ, **env}, cwd=repo, check=True,
            )  # fmt: skip
            runs[name].append((time.perf_counter_ns() - begin) / 1000.0)
    ratio = p50([a / b for a, b in zip(runs["keyless"], runs["secret"], strict=True)])
    record("cold start + minting first vend, keyless (3 KMS calls), p50", us(p50(runs["keyless"])))
    record("cold start + minting first vend, secret (read + key load), p50", us(p50(runs["secret"])))
    record("  keyless ÷ secret, cold minting start", f"{ratio:.2f}×")


def main() -> int:
    from benchmarks.run import BENCH_SCOPES, REPO
    from local.stack import DEFAULT_SCOPES, start_stack

    sys.stdout = open(os.devnull, "w")  # the function's own logs; ours go to REAL_STDOUT
    stack = start_stack(scopes=DEFAULT_SCOPES + BENCH_SCOPES)
    os.environ.update(stack.function_env())
    try:
        keyless_rows(stack, REPO)
    finally:
        stack.stop()
    return 0


__all__ = ["SIGNING_ALIAS", "keyless_rows"]

if __name__ == "__main__":
    raise SystemExit(main())
