"""What the vendor costs on AWS, from a bench run's handler durations and list prices (issue 32).

One model writes both ``benchmarks/results.md``'s "Cost model" section and docs/deploy.md's table, so they
cannot disagree: ``make bench`` calls ``write`` with the durations it measured; ``python -m
benchmarks.cost_model`` re-derives both from the durations the last run recorded in results.md (after a
price or model change, without re-running the bench).

Every price names its page and the date it was read; where this machine could not confirm one from a page,
the source says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results.md"
README = REPO / "docs" / "deploy.md"  # the page with the cost table ("What it costs")
BEGIN, END = "<!-- cost-table:begin (benchmarks/cost_model.py) -->", "<!-- cost-table:end -->"
DURATIONS_TAG = re.compile(r"<!-- durations: (\{.*?\}) -->")

# Price -> (us-east-1, eu-west-2, source and date read).
PRICES: dict[str, tuple[float, float, str]] = {
    "lambda_request": (0.20e-6, 0.20e-6, "aws.amazon.com/lambda/pricing (2026-11-25)"),
    "lambda_gb_s_arm": (
        0.0000133334,
        0.0000133334,
        "aws.amazon.com/lambda/pricing, arm, first 7.5 bn GB-s (2026-11-25)",
    ),
    "apigw_rest": (
        3.50e-6,
        3.70e-6,
        "aws.amazon.com/api-gateway/pricing, REST, first 333 M (2026-11-25; eu-west-2 not re-read)",
    ),
    "dynamodb_read": (
        0.125e-6,
        0.1475e-6,
        "aws.amazon.com/dynamodb/pricing/on-demand, per read unit (2026-11-25; eu-west-2 not re-read)",
    ),
    "dynamodb_write": (
        0.625e-6,
        0.7375e-6,
        "aws.amazon.com/dynamodb/pricing/on-demand, per write unit (2026-11-25; eu-west-2 not re-read)",
    ),
    "kms_request": (0.03e-4, 0.03e-4, "aws.amazon.com/kms/pricing, $0.03 per 10,000 (2026-11-25)"),
    "kms_key_month": (
        1.00,
        1.00,
        "aws.amazon.com/kms/pricing, +$1 a month per rotation, the first two (2026-11-25)",
    ),
    "secret_month": (
        0.40,
        0.40,
        "aws.amazon.com/secrets-manager/pricing, $0.40 per secret (transcribed 2026-09-20; read 2026-12-02)",
    ),
    "secrets_call": (
        0.05e-4,
        0.05e-4,
        "aws.amazon.com/secrets-manager/pricing, $0.05 per 10,000 calls (transcribed 2026-09-20; read 2026-12-02)",
    ),
    "logs_gb": (
        0.50,
        0.5985,
        "aws.amazon.com/cloudwatch/pricing, standard ingestion (us-east-1 2026-11-25; eu-west-2 $0.5985 from the AWS Price List as issue 32 recomputed it: no page confirmed it here, 2026-12-02)",
    ),
    "metric_month": (
        0.30,
        0.30,
        "aws.amazon.com/cloudwatch/pricing, first 10,000 custom metrics (2026-11-25)",
    ),
    "alarm_month": (0.10, 0.10, "aws.amazon.com/cloudwatch/pricing, standard resolution (2026-11-25)"),
    "dashboard_month": (3.00, 3.00, "aws.amazon.com/cloudwatch/pricing (2026-11-25)"),
    "scheduler_invocation": (
        1.00e-6,
        1.15e-6,
        "aws.amazon.com/eventbridge/pricing, Scheduler after 14 M free (us-east-1 2026-11-25, and a third-party guide of 2026-03 read 2026-12-02; eu-west-2 $1.15 from the AWS Price List as issue 32 recomputed it: not confirmed from a page here)",
    ),
    "snapstart_cache_gb_s": (
        1.5046e-6,
        1.5046e-6,
        "aws.amazon.com/lambda/pricing, SnapStart cache (Python, .NET), per GB-second of memory, a version's "
        "snapshot for as long as it is active, at least 3 hours (the page renders its rates in the browser: "
        "figure from a third-party guide of 2026-05, awsnegotiations.com, read 2026-12-02; eu-west-2 not "
        "confirmed)",
    ),
    "snapstart_restore_gb": (
        1.397998e-4,
        1.397998e-4,
        "aws.amazon.com/lambda/pricing, SnapStart restore, per GB of memory per restored environment (same "
        "third-party guide, read 2026-12-02; eu-west-2 not confirmed)",
    ),
    "xray_trace": (
        5.00e-6,
        5.00e-6,
        "aws.amazon.com/xray/pricing, traces recorded after 100,000 free (read 2026-12-02; eu-west-2 not confirmed)",
    ),
}
REGIONS = ("us-east-1", "eu-west-2")
FRONTS = ("direct", "REST API", "function URL")
MEMORY_GB = 0.5  # template.yaml Globals MemorySize: 512
LOG_BYTES_PER_VEND = 1000  # the audit line with its EMF metrics (~700 bytes) and Lambda's START/END/REPORT
REST_ACCESS_LOG_BYTES = 350  # one access log line (template.yaml's format)
AIC_ROUND_TRIP_MS = 200.0  # a mint against a real tenant (the loopback stand-in answers in about 1 ms)
COLD_START_INIT_MS = 300.0  # INIT phase, billed for on-demand functions since August 2025
TRAFFIC_METRICS = 30  # EMF names the audit line emits only when there is traffic (Mints, MemoryHits, ...)
IDLE_METRICS = 1  # ColdStart from the scheduled refresh's own containers
ALARMS = 10  # template.yaml, default deployment (REST API, scheduled refresh on)
REST_DETAILED_METRICS = 14  # MetricsEnabled: 7 per-method metrics x GET and POST on /token, with traffic only
RUNS_PER_MONTH = 60 * 24 * 30  # the scheduled refresh, once a minute
SECONDS_PER_MONTH = 30 * 24 * 3600
SNAPSHOTS = 2  # SnapStart on: the alias's version of each vending function (replaced versions are deleted)


def price(name: str, region: str) -> float:
    us_east, eu_west, _ = PRICES[name]
    return us_east if region == "us-east-1" else eu_west


def _duration(ms: float, region: str) -> float:
    billed = max(1, -(-int(ms * 1000) // 1000))  # whole milliseconds, at least 1
    return MEMORY_GB * billed / 1000 * price("lambda_gb_s_arm", region)


def path_cost(kind: str, front: str, region: str, durations: Mapping[str, float]) -> float:
    """One vend, in dollars. ``durations``: handler p99 in µs (direct, rest, url, table)."""
    handler_ms = {
        "direct": durations["direct"],
        "REST API": durations["rest"],
        "function URL": durations["url"],
    }
    ms = handler_ms[front] / 1000
    table_ms = durations["table"] / 1000
    logs = LOG_BYTES_PER_VEND / 1e9 * price("logs_gb", region)
    base = price("lambda_request", region) + logs
    if front == "REST API":
        base += price("apigw_rest", region) + REST_ACCESS_LOG_BYTES / 1e9 * price("logs_gb", region)
    if kind == "memory hit":
        return base + _duration(ms, region)
    if kind.startswith("table hit"):
        cost = base + _duration(ms + table_ms, region) + price("dynamodb_read", region)
        return cost + (price("kms_request", region) if "new container" in kind else 0.0)
    # a mint: the read before, the lease (a write), the secret read (the key is older than its 300 s
    # re-read at nearly every mint), the exchange, the store (a write), a data key (KMS)
    cost = (
        base
        + _duration(ms + table_ms * 3 + AIC_ROUND_TRIP_MS, region)
        + 2 * price("dynamodb_write", region)
        + price("dynamodb_read", region)
        + price("secrets_call", region)
        + price("kms_request", region)
    )
    if "SecretKmsKeyArn" in kind:  # Secrets Manager decrypts the secret under the customer's key
        cost += price("kms_request", region)
    return cost


KINDS = (
    "memory hit",
    "table hit (data key cached)",
    "table hit, new container (KMS Decrypt)",
    "mint (200 ms AIC round trip, secret re-read)",
    "mint, secret under SecretKmsKeyArn",
)


def monthly(region: str) -> list[tuple[str, float]]:
    """Monthly lines apart from traffic."""
    schedule = RUNS_PER_MONTH * (
        price("scheduler_invocation", region) + price("lambda_request", region) + _duration(5.0, region)
    ) + RUNS_PER_MONTH * LOG_BYTES_PER_VEND / 1e9 * price("logs_gb", region)
    idle = (
        price("kms_key_month", region)
        + price("dashboard_month", region)
        + ALARMS * price("alarm_month", region)
        + price("secret_month", region)
        + IDLE_METRICS * price("metric_month", region)
        + schedule
    )
    return [
        (f"idle stack per month (KMS key, dashboard, {ALARMS} alarms, the secret, the schedule)", idle),
        ("each yearly key rotation, per month (the first two)", price("kms_key_month", region)),
        (
            f"with traffic: ~{TRAFFIC_METRICS} EMF metrics, per month",
            TRAFFIC_METRICS * price("metric_month", region),
        ),
        (
            f"REST API stage detailed metrics ({REST_DETAILED_METRICS}), per month",
            REST_DETAILED_METRICS * price("metric_month", region),
        ),
        ("INIT per million cold starts", 1e6 * _duration(COLD_START_INIT_MS, region)),
        (
            "SnapStart=PublishedVersions: snapshot cache of both vending functions, per month",
            SNAPSHOTS * MEMORY_GB * SECONDS_PER_MONTH * price("snapstart_cache_gb_s", region),
        ),
        (
            "SnapStart: restore charge per million restored starts (they skip INIT)",
            1e6 * MEMORY_GB * price("snapstart_restore_gb", region),
        ),
        ("X-Ray (XRayTracing=Active) per million traced requests", 1e6 * price("xray_trace", region)),
    ]


def table_rows(durations: Mapping[str, float]) -> list[str]:
    rows = ["| region | path | direct | REST API | function URL |", "| --- | --- | --- | --- | --- |"]
    for region in REGIONS:
        for kind in KINDS:
            cells = [f"${path_cost(kind, front, region, durations) * 1e6:,.2f}" for front in FRONTS]
            rows.append(f"| {region} | {kind}, per million | " + " | ".join(cells) + " |")
        rows += [f"| {region} | {label} | ${value:,.2f} | | |" for label, value in monthly(region)]
    return rows


def results_section(durations: Mapping[str, float]) -> list[str]:
    journey = (
        price("lambda_request", "us-east-1")
        + _duration(durations["journey"] / 1000 + AIC_ROUND_TRIP_MS, "us-east-1")
        + price("secrets_call", "us-east-1")
        + LOG_BYTES_PER_VEND / 1e9 * price("logs_gb", "us-east-1")
    )
    return [
        "",
        "## Cost model",
        "",
        f"<!-- durations: {json.dumps(dict(sorted(durations.items())))} -->",
        f"Handler durations from this run (p99: direct {durations['direct']:.0f} µs, REST event "
        f"{durations['rest']:.0f} µs, function URL event {durations['url']:.0f} µs; a table hit "
        f"{durations['table'] / 1000:.1f} ms), billed as whole milliseconds at {int(MEMORY_GB * 1024)} MB arm64; "
        f"INIT {COLD_START_INIT_MS:.0f} ms per cold start; {LOG_BYTES_PER_VEND} bytes of log per vend, "
        f"{REST_ACCESS_LOG_BYTES} more per REST access log line. Free tiers left out. docs/deploy.md's table is "
        "these rows (benchmarks/cost_model.py writes both).",
        "",
        *table_rows(durations),
        "",
        "Prices, with the page each comes from and when it was read:",
        "",
        *[
            f"- `{name}`: {_shown(us)} / {_shown(eu)} (us-east-1 / eu-west-2): {source}"
            for name, (us, eu, source) in PRICES.items()
        ],
        "",
        f"Minting per request instead (the journey-script way: a Secrets Manager read, a key load and an AIC "
        f"round trip every time), us-east-1: ${journey * 1e6:,.2f} per million, and a million AIC exchanges.",
    ]


def _shown(value: float) -> str:
    """A unit price as a bill shows it: per million when it is below a cent."""
    return f"${value * 1e6:,.4g} per million" if value < 0.01 else f"${value:,.4g}"


def _replace_between(text: str, begin: str, end: str, body: list[str]) -> str:
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + "\n".join(body) + "\n" + text[stop:]


def write_readme(durations: Mapping[str, float]) -> None:
    README.write_text(_replace_between(README.read_text(), BEGIN, END, table_rows(durations)))


def recorded_durations(results: str) -> dict[str, float]:
    match = DURATIONS_TAG.search(results)
    if match is None:
        raise SystemExit("benchmarks/results.md records no durations: run `make bench`")
    return {k: float(v) for k, v in json.loads(match.group(1)).items()}


def main() -> int:
    """Rewrite results.md's cost section and docs/deploy.md's table from the last run's durations."""
    results = RESULTS.read_text()
    durations = recorded_durations(results)
    head, _, rest = results.partition("\n## Cost model\n")
    _, _, tail = rest.partition("\n## ")
    RESULTS.write_text(head + "\n".join(results_section(durations)) + "\n\n## " + tail)
    write_readme(durations)
    print("cost_model: benchmarks/results.md and docs/deploy.md rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
