"""``make bench``, the handler in this process: warm latency, identity proofs, table hits, mints, throughput.

Each figure with a target is this service's cost over the bare thing it cannot avoid (one RS256 sign, one
GetItem on the same moto server, one POST to the same stand-in, one STS round trip), measured side by side.
Import it once the function's environment is set (``benchmarks.bench``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import botocore.session
import urllib3

from benchmarks.bench import Bench
from benchmarks.measure import DURATIONS, p50, p99, record, say, side_by_side, timings, us
from token_client.identity import IdentityProver
from token_vendor.adapters.aic.assertion import sign_assertion
from token_vendor.adapters.aws.item_format import cache_key
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.scopes import normalise_scopes
from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest
from token_vendor.vend.memory_cache import MemoryCache
from token_vendor.vend.vending import TokenVendor
from token_vendor.wiring import build_vendor

REPO = Path(__file__).resolve().parent.parent


def warm_latency(b: Bench) -> None:
    """A memory hit through the whole handler (direct, REST and function URL events) against one sign."""
    say("\nwarm latency (in process)")
    key, audience, app, context, new_jti = b.key, b.audience, b.app, b.context, b.new_jti
    sign = timings(
        lambda: sign_assertion(key, b.stack.account_id, audience, now=time.time(), new_jti=new_jti), 1000
    )
    record("one RS256 sign (PyJWT, loaded key), p50", us(p50(sign)))

    app.lambda_handler({"scope": "fr:idm:*"}, context)  # mint once; then memory hits
    hit = timings(lambda: app.lambda_handler({"scope": "fr:idm:*"}, context), 5000)
    rest_event = json.loads((REPO / "events" / "rest_get.json").read_text())
    url_event = json.loads((REPO / "events" / "function_url.json").read_text())
    http_hit = timings(lambda: app.http_handler(rest_event, context), 2000)
    url_hit = timings(lambda: app.http_handler(url_event, context), 2000)
    DURATIONS.update(direct=p99(hit), rest=p99(http_hit), url=p99(url_hit))
    b.hit = hit
    ratio = p50(hit) / p50(sign)
    record("memory-hit vend, whole handler, p50 / p99", f"{us(p50(hit))} / {us(p99(hit))}")
    record("  memory-hit vend ÷ one RS256 sign", f"{ratio:.3f}×", "≤ 0.2×", ratio <= 0.2)


def identity_proofs(b: Bench) -> None:
    """Issue 21: a remembered proof against none; a first-seen proof against a bare STS round trip."""
    app, context = b.app, b.context
    proving = botocore.session.Session()
    proving.set_credentials("testing", "testing", "testing")  # the local developer (LOCAL_AWS_ENV)
    proof = IdentityProver(proving, "us-east-1", "token-vendor", sts_url=b.stack.sts.endpoint).proof()
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

    fresh_vends, sts_posts, ratio = side_by_side(fresh_proof_vend, bare_sts, rounds=6, n=40, warmup=3)
    extra = p50(fresh_vends) - p50(proven)
    record("memory-hit vend with a first-seen proof (parse + one STS call), p50", us(p50(fresh_vends)))
    record("  first-seen proof's cost over a remembered one, p50", us(extra))
    record("  bare GetCallerIdentity POST to the same loopback STS, p50", us(p50(sts_posts)))
    record(
        "  first-seen-proof vend ÷ (memory hit + bare STS round trip)",
        f"{p50(fresh_vends) / (p50(b.hit) + p50(sts_posts)):.2f}×",
        "≈ 1× (one STS call)",
    )


def table_hit(b: Bench) -> TokenVendor:
    """A vendor whose memory never holds a token, against a bare GetItem; returns that vendor."""
    settings = b.settings
    table_vendor = build_vendor(settings, memory=MemoryCache(max_entries=0))  # every vend misses memory
    request = VendRequest(normalise_scopes("fr:idm:*"), None, DIRECT_CALLER)
    deadline = Deadline.after(1e9, time.monotonic)
    table_vendor.vend(request, deadline)
    dynamodb = table_vendor.table._client.unbounded  # the same client and settings the vendor uses
    pk = cache_key(settings.tenant_fqdn, table_vendor.account_ref, request.scopes)

    def bare_get() -> None:
        dynamodb.get_item(TableName=settings.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)

    table_hits, bare_gets, ratio = side_by_side(
        lambda: table_vendor.vend(request, deadline), bare_get, rounds=8, n=60, warmup=5
    )
    b.table_hits = table_hits
    record("table-hit vend (GetItem + AES-GCM), p50 / p99", f"{us(p50(table_hits))} / {us(p99(table_hits))}")
    DURATIONS["table"] = p99(table_hits)
    record("bare GetItem on the same moto server, p50", us(p50(bare_gets)))
    record("  table hit ÷ bare GetItem", f"{ratio:.2f}×", "≤ 1.2×", ratio <= 1.2)
    return table_vendor


def mint(b: Bench, table_vendor: TokenVendor) -> None:
    """Key from cache, sign, exchange, against one bare POST to the stand-in plus one sign."""
    key, audience, pool, new_jti = b.key, b.audience, b.pool, b.new_jti
    mint_request = VendRequest(normalise_scopes("fr:am:*"), None, DIRECT_CALLER)
    deadline = Deadline.after(1e9, time.monotonic)

    def bare_post() -> None:
        assertion = sign_assertion(key, b.stack.account_id, audience, now=time.time(), new_jti=new_jti)
        body = {
            "client_id": "service-account",
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion.jwt,
            "scope": "fr:am:*",
        }
        response = pool.request("POST", audience, fields=body, encode_multipart=False)
        assert response.status == 200

    # The stand-in's own cost dominates both sides: more rounds than for the table hit.
    mints, posts, ratio = side_by_side(
        lambda: table_vendor.minter.mint(mint_request, deadline, None, None),
        bare_post,
        rounds=10,
        n=60,
        warmup=3,
    )
    record("mint (key from cache, sign, exchange), p50 / p99", f"{us(p50(mints))} / {us(p99(mints))}")
    record("bare POST to the stand-in + one sign, p50", us(p50(posts)))
    record("  mint ÷ (bare POST + sign)", f"{ratio:.2f}×", "≤ 1.1×", ratio <= 1.1)


def throughput(b: Bench) -> None:
    say("\nthroughput (one thread, whole handler)")
    app, context = b.app, b.context
    count, until = 0, time.perf_counter() + 2.0
    while time.perf_counter() < until:
        app.lambda_handler({"scope": "fr:idm:*"}, context)
        count += 1
    record("memory-hit vends per second, one core", f"{count / 2.0:,.0f}/s")
