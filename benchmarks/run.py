"""``make bench``: the figures of issue 7, measured side by side in one run on the local stack.

Every figure that has a target is a ratio of two things measured in this same run, so it holds on a noisy
machine. Writes ``benchmarks/results.md`` and prints the same table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from benchmarks.cost_model import results_section as cost_section
from benchmarks.cost_model import write_readme
from local.stack import DEFAULT_SCOPES, DEVELOPER_ROLE, private_jwk, start_stack

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results.md"
BENCH_SCOPES = tuple(f"bench:s{i}" for i in range(1000))
REAL_STDOUT = sys.stdout


def say(text: str) -> None:
    REAL_STDOUT.write(text + "\n")
    REAL_STDOUT.flush()


@dataclass
class Figure:
    name: str
    value: str
    target: str = ""
    met: bool | None = None


FIGURES: list[Figure] = []
DURATIONS: dict[str, float] = {}  # microseconds, for the cost model


def record(name: str, value: str, target: str = "", met: bool | None = None) -> None:
    FIGURES.append(Figure(name, value, target, met))
    mark = "" if met is None else ("  [met]" if met else "  [NOT met]")
    say(f"  {name:<58} {value:>24}  {target}{mark}")


def timings(fn: Callable[[], Any], n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        started = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - started) / 1000.0)  # microseconds
    return out


def side_by_side(
    ours: Callable[[], Any], bare: Callable[[], Any], *, rounds: int, n: int, warmup: int
) -> tuple[list[float], list[float], float]:
    """Interleaved rounds of both; the ratio is the median of the rounds' ratios, so drift cancels."""
    ours_all: list[float] = []
    bare_all: list[float] = []
    ratios: list[float] = []
    for _ in range(rounds):
        ours_round = timings(ours, n, warmup=warmup)
        bare_round = timings(bare, n, warmup=warmup)
        ours_all += ours_round
        bare_all += bare_round
        ratios.append(p50(ours_round) / p50(bare_round))
    return ours_all, bare_all, p50(ratios)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.1f} µs"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    started = time.monotonic()
    # The function's JSON logs and EMF metrics go to stdout: send them to /dev/null, keep ours.
    sys.stdout = open(os.devnull, "w")
    stack = start_stack(scopes=DEFAULT_SCOPES + BENCH_SCOPES)
    env = stack.function_env(
        CALLER_POLICY=json.dumps(
            {"arn:aws:iam::123456789012:role/reporting": ["fr:idm:*"], DEVELOPER_ROLE: ["*"]}
        )
    )
    os.environ.update(env)
    from local.lambda_context import LocalContext
    from token_vendor import app
    from token_vendor.assertion import sign_assertion
    from token_vendor.deadline import Deadline
    from token_vendor.key_source import key_from_jwk
    from token_vendor.memory_cache import MemoryCache
    from token_vendor.runtime import build_vendor
    from token_vendor.scopes import normalise_scopes
    from token_vendor.settings import load_settings
    from token_vendor.vend_request import DIRECT_CALLER, VendRequest

    say(f"token vendor benchmarks — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {machine()}")
    context = LocalContext(timeout_seconds=1e9)
    key = stack.key
    audience = stack.standin.token_url
    new_jti = lambda: str(uuid.uuid4())  # noqa: E731

    # -- warm latency in process ----------------------------------------------------------------------
    say("\nwarm latency (in process)")
    sign = timings(
        lambda: sign_assertion(key, stack.account_id, audience, now=time.time(), new_jti=new_jti), 1000
    )
    record("one RS256 sign (PyJWT, loaded key), p50", us(p50(sign)))

    app.lambda_handler({"scope": "fr:idm:*"}, context)  # mint once; then memory hits
    hit = timings(lambda: app.lambda_handler({"scope": "fr:idm:*"}, context), 5000)
    rest_event = json.loads((REPO / "events" / "rest_get.json").read_text())
    url_event = json.loads((REPO / "events" / "function_url.json").read_text())
    http_hit = timings(lambda: app.http_handler(rest_event, context), 2000)
    url_hit = timings(lambda: app.http_handler(url_event, context), 2000)
    DURATIONS.update(direct=p99(hit), rest=p99(http_hit), url=p99(url_hit))
    ratio = p50(hit) / p50(sign)
    record("memory-hit vend, whole handler, p50 / p99", f"{us(p50(hit))} / {us(p99(hit))}")
    record("  memory-hit vend ÷ one RS256 sign", f"{ratio:.3f}×", "≤ 0.2×", ratio <= 0.2)

    # -- identity proofs (issue 21) -------------------------------------------------------------------
    import botocore.session

    from token_client.identity import IdentityProver

    proving = botocore.session.Session()
    proving.set_credentials("testing", "testing", "testing")  # the local developer (LOCAL_AWS_ENV)

    def new_proof() -> dict[str, Any]:
        return IdentityProver(proving, "us-east-1", "token-vendor", sts_url=stack.sts.endpoint).proof()

    proof = new_proof()
    app.lambda_handler({"scope": "fr:idm:*", "identity": proof}, context)  # verified once, then remembered
    proven, _unproven, ratio = side_by_side(
        lambda: app.lambda_handler({"scope": "fr:idm:*", "identity": proof}, context),
        lambda: app.lambda_handler({"scope": "fr:idm:*"}, context),
        rounds=8,
        n=500,
        warmup=20,
    )
    record("memory-hit vend with a remembered identity proof, p50", us(p50(proven)))
    record("  ÷ memory-hit vend without a proof", f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5)
    sts_pool = urllib3.PoolManager(retries=False)

    verifier = app.current_runtime().proof_verifier()

    def fresh_proof_vend() -> None:
        # A proof signed within the same second is the same proof (remembered): forget it instead, so each
        # vend is a first one (parse + one STS call); signing happens in the client, so it is not timed.
        verifier._verified.clear()
        app.lambda_handler({"scope": "fr:idm:*", "identity": proof}, context)

    def bare_sts() -> None:
        response = sts_pool.request(
            "POST", proof["url"], body=proof["body"].encode(), headers=proof["headers"]
        )
        assert response.status == 200

    fresh_vends, sts_posts, ratio = side_by_side(
        fresh_proof_vend,
        bare_sts,
        rounds=6,
        n=40,
        warmup=3,
    )
    extra = p50(fresh_vends) - p50(proven)
    record("memory-hit vend with a first-seen proof (parse + one STS call), p50", us(p50(fresh_vends)))
    record("  first-seen proof's cost over a remembered one, p50", us(extra))
    record("  bare GetCallerIdentity POST to the same loopback STS, p50", us(p50(sts_posts)))
    record(
        "  first-seen-proof vend ÷ (memory hit + bare STS round trip)",
        f"{p50(fresh_vends) / (p50(hit) + p50(sts_posts)):.2f}×",
        "≈ 1× (one STS call)",
    )

    settings = load_settings(os.environ)
    table_vendor = build_vendor(settings, memory=MemoryCache(max_entries=0))  # every vend misses memory
    request = VendRequest(normalise_scopes("fr:idm:*"), None, DIRECT_CALLER)
    deadline = Deadline.after(1e9, time.monotonic)
    table_vendor.vend(request, deadline)
    dynamodb = table_vendor._table._client.unbounded  # the same client and settings the vendor uses
    from token_vendor.cached_token import cache_key

    pk = cache_key(settings.tenant_fqdn, table_vendor.account_ref, request.scopes)

    def bare_get() -> None:
        dynamodb.get_item(TableName=settings.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)

    table_hits, bare_gets, ratio = side_by_side(
        lambda: table_vendor.vend(request, deadline), bare_get, rounds=8, n=60, warmup=5
    )
    record("table-hit vend (GetItem + AES-GCM), p50 / p99", f"{us(p50(table_hits))} / {us(p99(table_hits))}")
    DURATIONS["table"] = p99(table_hits)
    record("bare GetItem on the same moto server, p50", us(p50(bare_gets)))
    record("  table hit ÷ bare GetItem", f"{ratio:.2f}×", "≤ 1.2×", ratio <= 1.2)

    pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)
    mint_request = VendRequest(normalise_scopes("fr:am:*"), None, DIRECT_CALLER)

    def bare_post() -> None:
        assertion = sign_assertion(key, stack.account_id, audience, now=time.time(), new_jti=new_jti)
        body = {
            "client_id": "service-account",
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion.jwt,
            "scope": "fr:am:*",
        }
        response = pool.request("POST", stack.standin.token_url, fields=body, encode_multipart=False)
        assert response.status == 200

    # The stand-in's own cost dominates both sides: more rounds than for the table hit.
    mints, posts, ratio = side_by_side(
        lambda: table_vendor._mint(mint_request, deadline, None, None), bare_post, rounds=10, n=60, warmup=3
    )
    record("mint (key from cache, sign, exchange), p50 / p99", f"{us(p50(mints))} / {us(p99(mints))}")
    record("bare POST to the stand-in + one sign, p50", us(p50(posts)))
    record("  mint ÷ (bare POST + sign)", f"{ratio:.2f}×", "≤ 1.1×", ratio <= 1.1)

    # -- throughput -----------------------------------------------------------------------------------
    say("\nthroughput (one thread, whole handler)")
    count, until = 0, time.perf_counter() + 2.0
    while time.perf_counter() < until:
        app.lambda_handler({"scope": "fr:idm:*"}, context)
        count += 1
    record("memory-hit vends per second, one core", f"{count / 2.0:,.0f}/s")

    # -- stampede -------------------------------------------------------------------------------------
    say("\nstampede (8 simulated containers × 16 threads = 128-way)")
    from tests.integration.conftest import FakeWall  # the tests' movable wall clock
    from token_vendor.vending import Clocks, TokenVendor

    wall = FakeWall()
    counts: dict[str, int] = {}
    counts_lock = threading.Lock()

    class CountingSink:
        def add_metric(self, name: str, unit: str, value: float) -> None:
            with counts_lock:
                counts[name] = counts.get(name, 0) + 1

    def container() -> TokenVendor:
        vendor = build_vendor(settings)
        vendor._metrics = CountingSink()
        vendor._clocks = Clocks(wall=wall)
        vendor._table._clock = wall
        if vendor._table._envelope is not None:
            vendor._table._envelope._clock = wall
        return vendor

    def stampede(scope: str, total: int = 1024) -> int:
        vendors = [container() for _ in range(8)]
        before = stack.standin.exchanges
        barrier = threading.Barrier(128)
        stamp_request = VendRequest(normalise_scopes(scope), None, DIRECT_CALLER)

        def worker(vendor: TokenVendor) -> None:
            barrier.wait()
            for _ in range(total // 128):
                vendor.vend(stamp_request, Deadline.after(30, time.monotonic))

        with ThreadPoolExecutor(max_workers=128) as executor:
            list(executor.map(worker, [v for v in vendors for _ in range(16)]))
        return stack.standin.exchanges - before

    cold = stampede("fr:idc:esv:read")
    record("exchanges per 1,024 vends, cold cache", str(cold), "= 1", cold == 1)
    say(f"    (tiers and waits: {dict(sorted(counts.items()))})")
    counts.clear()
    wall.advance(899 - 200)  # every container now holds a token inside the refresh-ahead window
    refresh = stampede("fr:idc:esv:read")
    record("exchanges per 1,024 vends, across a refresh-ahead window", str(refresh), "= 1", refresh == 1)
    say(f"    (tiers and waits: {dict(sorted(counts.items()))})")

    # -- steady load with and without the scheduled refresh (issue 25) --------------------------------
    say(
        "\nsteady load, 3 token lifetimes on a fast clock (60 s tokens; schedule every 4 s, as 60 s is to 899 s)"
    )
    from token_vendor.scheduled_refresh import ScheduledRefresher

    def steady(with_schedule: bool, scope: str) -> tuple[int, list[float], int]:
        clock = FakeWall()
        fast = load_settings({**os.environ, "REFRESH_AHEAD_SECONDS": "20", "MIN_VALIDITY_SECONDS": "8"})
        fleet = []
        for _ in range(4):
            vendor = build_vendor(fast)
            vendor._clocks = Clocks(wall=clock)
            vendor._table._clock = clock
            if vendor._table._envelope is not None:
                vendor._table._envelope._clock = clock
            fleet.append(vendor)
        refresher = ScheduledRefresher(
            fleet[0],
            fleet[0].table,
            tenant=fast.tenant_fqdn,
            account_ref=fleet[0].account_ref,
            keep_warm_seconds=3600,
            clock=clock,
            metrics=CountingSink(),
            lookahead=4.0,
        )
        steady_request = VendRequest(normalise_scopes(scope), None, DIRECT_CALLER)
        caller_mints, latencies = 0, []
        before = stack.standin.exchanges
        for tick in range(360):  # 180 s of the fast clock in half-second ticks: 3 lifetimes
            if with_schedule and tick % 8 == 0:
                refresher.run(Deadline.after(30, time.monotonic))
            for vendor in fleet:
                started = time.perf_counter()
                vended = vendor.vend(steady_request, Deadline.after(30, time.monotonic))
                if tick >= 120:  # steady state: after the first lifetime
                    latencies.append((time.perf_counter() - started) * 1e6)
                    caller_mints += vended.tier == "minted"
            clock.advance(0.5)
        return caller_mints, latencies, stack.standin.exchanges - before

    stack.standin.set_token_lifetime(60)
    try:
        scheduled_mints, scheduled_lat, scheduled_exchanges = steady(True, "bench:s998")
        unscheduled_mints, unscheduled_lat, unscheduled_exchanges = steady(False, "bench:s997")
    finally:
        stack.standin.set_token_lifetime(899)
    table_p99 = p99(table_hits)
    record(
        "with the schedule: mints inside a caller's request (steady state)",
        str(scheduled_mints),
        "= 0",
        scheduled_mints == 0,
    )
    record(
        "  steady-state p99 vend ÷ table-hit p99",
        f"{p99(scheduled_lat) / table_p99:.2f}×",
        "≤ 1.2×",
        p99(scheduled_lat) / table_p99 <= 1.2,
    )
    record("  p50 / p99 vend", f"{us(p50(scheduled_lat))} / {us(p99(scheduled_lat))}")
    record("  exchanges at AIC over 3 lifetimes", str(scheduled_exchanges))
    record("without the schedule (today): mints inside a caller's request", str(unscheduled_mints))
    record("  steady-state p99 vend ÷ table-hit p99", f"{p99(unscheduled_lat) / table_p99:.2f}×")
    record("  p50 / p99 vend", f"{us(p50(unscheduled_lat))} / {us(p99(unscheduled_lat))}")
    record("  exchanges at AIC over 3 lifetimes", str(unscheduled_exchanges))

    # -- warm re-read -----------------------------------------------------------------------------------
    say("\nwarm re-read (a flush or a retirement reaches every warm container within a minute)")
    reader = container()
    inner = reader._table._client
    reads = [0]

    class CountingReads:
        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        def get_item(self, **kwargs: Any) -> Any:
            reads[0] += 1
            return inner.get_item(**kwargs)

    reader._table._client = CountingReads()
    reread_request = VendRequest(normalise_scopes("bench:s999"), None, DIRECT_CALLER)
    reader.vend(reread_request, Deadline.after(30, time.monotonic))
    reads[0] = 0
    minutes = 5  # inside the token's life before its refresh-ahead window: memory hits only
    for _ in range(minutes * 60):
        wall.advance(1)  # one vend a second on the container's clock
        reader.vend(reread_request, Deadline.after(30, time.monotonic))
    per_minute = reads[0] / minutes
    record(
        "table reads per container per scope set per minute (1 vend/s)",
        f"{per_minute:.2f}",
        "≤ 1",
        per_minute <= 1,
    )

    # -- side by side ---------------------------------------------------------------------------------
    say("\nside by side, one token for one caller (same stand-in)")
    jwk = private_jwk(key)
    jose = shutil.which("jose")
    curl = shutil.which("curl")
    shell: list[float] = []
    if jose:
        with tempfile.TemporaryDirectory() as tmp:
            key_file = Path(tmp) / "key.jwk"
            key_file.write_text(json.dumps({**jwk, "alg": "RS256"}))
            for _ in range(12):
                begin = time.perf_counter_ns()
                now = int(time.time())
                payload = {
                    "iss": stack.account_id,
                    "sub": stack.account_id,
                    "aud": audience,
                    "exp": now + 899,
                    "jti": str(uuid.uuid4()),
                }
                (Path(tmp) / "payload.json").write_text(json.dumps(payload))
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
                assertion = (Path(tmp) / "jwt.txt").read_text().strip()
                form = [
                    "--data",
                    "client_id=service-account",
                    "--data",
                    "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "--data",
                    f"assertion={assertion}",
                    "--data",
                    "scope=fr:idm:*",
                ]
                if curl:
                    subprocess.run(
                        [curl, "-sS", "-o", os.devnull, "--request", "POST", audience, *form], check=True
                    )
                else:
                    pool.request(
                        "POST",
                        audience,
                        fields={
                            "client_id": "service-account",
                            "assertion": assertion,
                            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                            "scope": "fr:idm:*",
                        },
                        encode_multipart=False,
                    )
                shell.append((time.perf_counter_ns() - begin) / 1000.0)
        record(f"(a) documented shell flow (jose + {'curl' if curl else 'POST'}), p50", us(p50(shell)))
    else:
        record("(a) documented shell flow", "skipped: no 'jose' CLI (apt-get install jose)")

    def journey() -> None:
        loaded, _ = key_from_jwk(jwk)  # the journey script parses the JWK on every request
        assertion = sign_assertion(loaded, stack.account_id, audience, now=time.time(), new_jti=new_jti)
        response = pool.request(
            "POST",
            audience,
            fields={
                "client_id": "service-account",
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion.jwt,
                "scope": "fr:idm:*",
            },
            encode_multipart=False,
        )
        assert response.status == 200

    per_request = timings(journey, 60, warmup=3)
    DURATIONS["journey"] = p50(per_request)
    record("(b) journey-script way (load key, sign, exchange), p50", us(p50(per_request)))
    record("(c) this service: memory hit / table hit, p50", f"{us(p50(hit))} / {us(p50(table_hits))}")
    if shell:
        ratio = p50(shell) / p50(hit)
        record("  shell flow ÷ memory-hit vend", f"{ratio:,.0f}×", "≥ 200×", ratio >= 200)
    ratio = p50(per_request) / p50(hit)
    record("  journey way ÷ memory-hit vend", f"{ratio:,.0f}×")

    # -- cold start -----------------------------------------------------------------------------------
    say("\ncold start (fresh process, median of 11, interleaved)")
    # Our packages are installed (editable) in the venv; `-m` from the repository root finds `local`.
    child_env = dict(os.environ)
    app.lambda_handler(
        {"scope": "fr:idm:*"}, context
    )  # the table holds a token: the child's first vend hits it
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(11):  # pairs run back to back; the ratio is the median of the pairs' ratios
        for target, sink in (("benchmarks.cold_child", ours), ("benchmarks.bare_child", bare)):
            begin = time.perf_counter_ns()
            subprocess.run([sys.executable, "-m", target], env=child_env, cwd=REPO, check=True)
            sink.append((time.perf_counter_ns() - begin) / 1000.0)
    ratio = p50([a / b for a, b in zip(ours, bare, strict=True)])
    record("import handler + first vend (table hit), p50", us(p50(ours)))
    record("bare 'import boto3' + one client, p50", us(p50(bare)))
    record("  source-tree cold start ÷ bare boto3", f"{ratio:.2f}×", "≤ 1.3×", ratio <= 1.3)

    built_cold_start(child_env)

    # -- memory ---------------------------------------------------------------------------------------
    say("\nmemory (peak RSS of a handler process)")

    def rss(vends: int, sets: int) -> int:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.rss_child", str(vends), str(sets)],
            env=child_env,
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        )
        return int(out.stdout.strip().splitlines()[-1])

    small, large = rss(10, 1), rss(10_000, 1000)
    ratio = large / small
    record("after 10 vends (1 scope set)", f"{small / 1024:.1f} MiB")
    record("after 10,000 vends (1,000 scope sets)", f"{large / 1024:.1f} MiB")
    record("  ratio", f"{ratio:.2f}×", "≤ 1.2×", ratio <= 1.2)

    from benchmarks.keyless import keyless_rows  # issue 35: its own module (`python -m benchmarks.keyless`)

    keyless_rows(stack, REPO)

    elapsed = time.monotonic() - started
    say(f"\nbench took {elapsed:.0f} s")
    write_results(elapsed)
    stack.stop()
    return 0


def built_cold_start(child_env: dict[str, str]) -> None:
    """What ships, as Lambda runs it: the built function + layer under CPython 3.13, read-only, with
    PYTHONDONTWRITEBYTECODE=1; import plus the first vend (a table hit). Against a bare ``import boto3`` and
    one client from the same botocore pin, with bytecode, in the same 3.13. Medians of interleaved runs."""
    from tools.compile_build import find_runtime_python
    from tools.lambda_layout import BUILD, lay_out, pins, pip_target, set_writable

    say("\ncold start of the built artefact (CPython 3.13, read-only code, no bytecode writes; median of 11)")
    python = find_runtime_python()
    if python is None or not (BUILD / "bytecode.json").exists():
        record("built artefact cold start", "not measured: no CPython 3.13 or no 'make build'")
        return
    layer = BUILD / "DependenciesLayer" / "python"
    unpacked = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as scratch:
        archive = shutil.make_archive(str(Path(scratch) / "layer"), "zip", layer.parent, "python")
        zipped = Path(archive).stat().st_size
    record("dependencies layer, unpacked / zipped", f"{unpacked / 1e6:.1f} MB / {zipped / 1e6:.1f} MB")
    child = str(REPO / "tests" / "built" / "lambda_child.py")
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        shipped_env = {**child_env, **lay_out(root / "shipped")}
        source_env = {**child_env, **lay_out(root / "source_only", bytecode=False)}
        versions = pins()
        bare_dir = root / "bare"
        pip_target(
            bare_dir,
            [
                f"boto3=={REQUIRED_BOTO3}",
                "s3transfer",
                *(
                    f"{n}=={versions[n]}"
                    for n in ("botocore", "jmespath", "python-dateutil", "six", "urllib3")
                ),
            ],
        )
        subprocess.run(
            [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(bare_dir)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        set_writable(bare_dir, False)
        bare_env = {**child_env, "PYTHONPATH": str(bare_dir), "PYTHONDONTWRITEBYTECODE": "1"}
        bare_code = "import boto3; boto3.client('dynamodb', region_name='us-east-1')"
        runs: dict[str, list[float]] = {"shipped": [], "source": [], "bare": []}
        commands = {
            "shipped": ([python, "-S", child, "--cold"], shipped_env),
            "source": ([python, "-S", child, "--cold"], source_env),
            "bare": ([python, "-S", "-c", bare_code], bare_env),
        }
        for _ in range(11):
            for name, (command, env) in commands.items():
                begin = time.perf_counter_ns()
                subprocess.run(command, env=env, check=True)
                runs[name].append((time.perf_counter_ns() - begin) / 1000.0)
        for folder in root.iterdir():
            set_writable(folder, True)
    ratio = p50([a / b for a, b in zip(runs["shipped"], runs["bare"], strict=True)])
    without = p50([a / b for a, b in zip(runs["source"], runs["bare"], strict=True)])
    record("built artefact: import handler + first vend (table hit), p50", us(p50(runs["shipped"])))
    record("bare 3.13 'import boto3' + one client (bytecode), p50", us(p50(runs["bare"])))
    record("  built cold start ÷ bare boto3", f"{ratio:.2f}×", "≤ 1.15×", ratio <= 1.15)
    record("  same artefact without bytecode ÷ bare boto3", f"{without:.2f}×")


REQUIRED_BOTO3 = "1.44.5"  # the dev pin; the layer itself ships botocore only


def cost_model() -> list[str]:
    """The cost section, from this run's handler durations (benchmarks/cost_model.py, which also writes the
    README's table from the same figures)."""
    if not DURATIONS:
        return []
    return cost_section(DURATIONS)


def write_results(elapsed: float) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, in {elapsed:.0f} s, on: {machine()}.",
        "",
        "Every figure with a target is a ratio of two things measured side by side in this run (absolute times",
        "on a shared 2-core machine drift; ratios hold). Latency ratios are the median of per-round ratios of",
        "interleaved rounds (cold start: of back-to-back process pairs), so drift between rounds cancels.",
        "Local stack: moto server and the AIC stand-in on loopback, so a 'round trip' here is a loopback HTTP",
        "call to a Python server.",
        "",
        "| figure | measured | target | |",
        "| --- | --- | --- | --- |",
    ]
    for f in FIGURES:
        status = "" if f.met is None else ("met" if f.met else "**not met**")
        lines.append(f"| {f.name.strip()} | {f.value} | {f.target} | {status} |")
    lines += cost_model()
    notes = HERE / "notes.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    RESULTS.write_text("\n".join(lines) + "\n")
    say(f"wrote {RESULTS.relative_to(REPO)}")
    if DURATIONS:
        write_readme(DURATIONS)
        say("wrote README.md's cost table from the same run")


if __name__ == "__main__":
    raise SystemExit(main())
