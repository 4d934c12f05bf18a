"""Issue 32: the cost model has every line a bill has, and docs/deploy.md shows the same run's figures."""

from __future__ import annotations

import re

import pytest

from benchmarks import cost_model
from local.aws import load_template

RESULTS = cost_model.RESULTS.read_text()
DURATIONS = cost_model.recorded_durations(RESULTS)


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\| (us-east-1|eu-west-2) \|", line)]


def test_the_deploy_page_table_is_the_results_table_of_the_same_run() -> None:
    readme = cost_model.README.read_text()
    between = readme[readme.index(cost_model.BEGIN) : readme.index(cost_model.END)]
    assert _rows(between) == _rows(RESULTS)
    assert _rows(RESULTS) == _rows("\n".join(cost_model.table_rows(DURATIONS)))  # the model wrote it


def _cost(kind: str, region: str = "us-east-1", front: str = "direct") -> float:
    return cost_model.path_cost(kind, front, region, DURATIONS) * 1e6


def test_a_table_hit_with_its_data_key_cached_pays_no_kms() -> None:
    cached, new = _cost("table hit (data key cached)"), _cost("table hit, new container (KMS Decrypt)")
    assert new - cached == pytest.approx(3.00)  # $0.03 per 10,000 KMS requests
    assert cached < new / 4


def test_a_mint_pays_the_secret_read_and_its_kms_decrypt_under_a_customer_key() -> None:
    plain = _cost("mint (200 ms AIC round trip, secret re-read)")
    with_key = _cost("mint, secret under SecretKmsKeyArn")
    assert with_key - plain == pytest.approx(3.00)
    assert cost_model.price("secrets_call", "us-east-1") * 1e6 == pytest.approx(5.00)


def test_london_prices_are_londons() -> None:
    assert cost_model.price("logs_gb", "eu-west-2") == 0.5985
    assert cost_model.price("scheduler_invocation", "eu-west-2") * 1e6 == pytest.approx(1.15)


def test_every_price_names_its_page_and_the_date_it_was_read() -> None:
    for name, (_, _, source) in cost_model.PRICES.items():
        assert re.search(r"aws\.amazon\.com/\S+", source), name
        assert re.search(r"20\d\d-\d\d-\d\d", source), name


def test_the_idle_month_counts_the_secret_and_not_the_traffic_metrics() -> None:
    lines = dict(cost_model.monthly("us-east-1"))
    idle = next(v for k, v in lines.items() if k.startswith("idle stack"))
    assert idle == pytest.approx(1.00 + 3.00 + cost_model.ALARMS * 0.10 + 0.40 + 0.30, abs=0.1)
    assert any("X-Ray" in k for k in lines)
    assert any("detailed metrics" in k for k in lines)


def test_the_counts_the_model_uses_are_the_templates() -> None:
    template = load_template(cost_model.REPO / "template.yaml")
    default_on = {None, "WithRestApi", "WithScheduledRefresh"}  # the default deployment's conditions
    alarms = [
        r for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r.get("Condition") in default_on
    ]  # fmt: skip
    assert len(alarms) == cost_model.ALARMS
    api = template["Resources"]["TokenApi"]["Properties"]
    methods = [m for path in api["DefinitionBody"]["paths"].values() for m in path]
    assert api["MethodSettings"][0]["MetricsEnabled"] is True
    assert 7 * len(methods) == cost_model.REST_DETAILED_METRICS  # Count, 4XX, 5XX, Latency, ... per method


def test_snapstart_costs_its_cache_per_month_and_each_restore_by_memory() -> None:
    """Issue 37: SnapStart's two charges, at 512 MB: the cached snapshot of each vending function's alias
    version, and every restored execution environment (which then skips the INIT phase it would pay)."""
    lines = dict(cost_model.monthly("us-east-1"))
    cache = next(v for k, v in lines.items() if k.startswith("SnapStart=PublishedVersions: snapshot cache"))
    restore = next(v for k, v in lines.items() if k.startswith("SnapStart: restore charge"))
    init = lines["INIT per million cold starts"]
    assert cache == pytest.approx(2 * 0.5 * 2_592_000 * 1.5046e-6)  # $3.90 a month
    assert restore == pytest.approx(0.5 * 1e6 * 1.397998e-4)  # $69.90 per million restores
    assert restore > 30 * init  # SnapStart buys latency, not money: a restore costs more than an INIT
