"""``make bench``, one token for one caller three ways against the same stand-in: (a) the documented shell
flow (``jose`` signs, ``curl`` posts), (b) a journey script's way (parse the JWK, sign, exchange, every
request), (c) this service's memory and table hits. Import it once the function's environment is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench import Bench
from benchmarks.measure import DURATIONS, p50, record, say, timings, us
from local.stack import private_jwk
from token_vendor.adapters.aic.assertion import sign_assertion
from token_vendor.adapters.aws.key_source import key_from_jwk

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def side_by_side_flows(b: Bench) -> None:
    say("\nside by side, one token for one caller (same stand-in)")
    jwk = private_jwk(b.key)
    jose, curl = shutil.which("jose"), shutil.which("curl")
    shell: list[float] = []
    if jose:
        shell = _shell_flow(b, jwk, jose, curl)
        record(f"(a) documented shell flow (jose + {'curl' if curl else 'POST'}), p50", us(p50(shell)))
    else:
        record("(a) documented shell flow", "skipped: no 'jose' CLI (apt-get install jose)")
    per_request = timings(lambda: _journey(b, jwk), 60, warmup=3)
    DURATIONS["journey"] = p50(per_request)
    hit, table_hits = b.hit, b.table_hits
    record("(b) journey-script way (load key, sign, exchange), p50", us(p50(per_request)))
    record("(c) this service: memory hit / table hit, p50", f"{us(p50(hit))} / {us(p50(table_hits))}")
    if shell:
        ratio = p50(shell) / p50(hit)
        record("  shell flow ÷ memory-hit vend", f"{ratio:,.0f}×", "≥ 200×", ratio >= 200)
    ratio = p50(per_request) / p50(hit)
    record("  journey way ÷ memory-hit vend", f"{ratio:,.0f}×")


def _shell_flow(b: Bench, jwk: dict[str, Any], jose: str, curl: str | None) -> list[float]:
    """Twelve runs of the shell flow, each timed whole (µs)."""
    shell: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key.jwk"
        key_file.write_text(json.dumps({**jwk, "alg": "RS256"}))
        for _ in range(12):
            begin = time.perf_counter_ns()
            assertion = _jose_assertion(b, Path(tmp), key_file, jose)
            if curl:
                form = [
                    "--data",
                    "client_id=service-account",
                    "--data",
                    f"grant_type={GRANT_TYPE}",
                    "--data",
                    f"assertion={assertion}",
                    "--data",
                    "scope=fr:idm:*",
                ]
                subprocess.run(
                    [curl, "-sS", "-o", os.devnull, "--request", "POST", b.audience, *form], check=True
                )
            else:
                b.pool.request(
                    "POST",
                    b.audience,
                    fields={
                        "client_id": "service-account",
                        "assertion": assertion,
                        "grant_type": GRANT_TYPE,
                        "scope": "fr:idm:*",
                    },
                    encode_multipart=False,
                )
            shell.append((time.perf_counter_ns() - begin) / 1000.0)
    return shell


def _jose_assertion(b: Bench, tmp: Path, key_file: Path, jose: str) -> str:
    """The assertion as the documented shell flow signs it: ``jose jws sig`` over a payload file."""
    now = int(time.time())
    payload = {
        "iss": b.stack.account_id,
        "sub": b.stack.account_id,
        "aud": b.audience,
        "exp": now + 899,
        "jti": str(uuid.uuid4()),
    }
    (tmp / "payload.json").write_text(json.dumps(payload))
    subprocess.run(
        [
            jose,
            "jws",
            "sig",
            "-I",
            f"{tmp}/payload.json",
            "-k",
            str(key_file),
            "-s",
            '{"alg":"RS256"}',
            "-c",
            "-o",
            f"{tmp}/jwt.txt",
        ],
        check=True,
    )
    return (tmp / "jwt.txt").read_text().strip()


def _journey(b: Bench, jwk: dict[str, Any]) -> None:
    loaded, _ = key_from_jwk(jwk)  # the journey script parses the JWK on every request
    assertion = sign_assertion(loaded, b.stack.account_id, b.audience, now=time.time(), new_jti=b.new_jti)
    response = b.pool.request(
        "POST",
        b.audience,
        fields={
            "client_id": "service-account",
            "grant_type": GRANT_TYPE,
            "assertion": assertion.jwt,
            "scope": "fr:idm:*",
        },
        encode_multipart=False,
    )
    assert response.status == 200
