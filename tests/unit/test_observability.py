"""The audit line and the logging set-up."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from token_vendor.kernel import observability
from token_vendor.kernel.cached_token import CachedToken, Vended
from token_vendor.kernel.errors import InvalidScope
from token_vendor.kernel.vend_request import VendRequest

REPO = Path(__file__).resolve().parents[2]


class Ctx:
    aws_request_id = "req-1"
    function_name = "vendor"


def _lines(run: object) -> list[dict[str, object]]:
    out = io.StringIO()
    observability.set_output(out)
    try:
        run()  # type: ignore[operator]
    finally:
        observability.set_output(None)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_one_line_per_invocation_with_audit_fields_and_emf_metrics() -> None:
    def run() -> None:
        observability.begin(Ctx(), cold_start=True)
        observability.METRICS.add_metric("MemoryHits", "Count", 1)
        observability.METRICS.add_metric("MintLatency", "Milliseconds", 2.5)
        observability.METRICS.add_metric("MintLatency", "Milliseconds", 3.5)
        token = CachedToken("eyJ-secret-token-value-0000", 2_000_000_000.0, "fr:idm:*")
        observability.note_vend(VendRequest(("fr:idm:*",), None, "direct"), Vended(token, "memory"))
        observability.finish()

    (line,) = _lines(run)
    assert line["audit"] is True
    assert line["function_request_id"] == "req-1"
    assert line["outcome"] == "ok"
    assert line["tier"] == "memory"
    assert "eyJ-secret" not in json.dumps(line)
    assert line["MemoryHits"] == 1
    assert line["MintLatency"] == [2.5, 3.5]
    assert line["ColdStart"] == 1
    (directive,) = line["_aws"]["CloudWatchMetrics"]  # type: ignore[index]
    assert directive["Namespace"] == "TokenVendor"
    assert directive["Dimensions"] == [["service"]]
    assert {"Name": "MintLatency", "Unit": "Milliseconds"} in directive["Metrics"]


def test_a_refusal_is_the_outcome() -> None:
    def run() -> None:
        observability.begin(Ctx(), cold_start=False)
        observability.note_refusal("direct", InvalidScope("no scope requested; ask for at least one"))
        observability.finish()

    (line,) = _lines(run)
    assert line["outcome"] == "InvalidScope"
    assert line["Refused_InvalidScope"] == 1
    assert "ColdStart" not in line


def test_metrics_outside_an_invocation_are_dropped_and_nothing_is_written() -> None:
    assert _lines(lambda: (observability.METRICS.add_metric("X", "Count", 1), observability.finish())) == []


def test_powertools_is_imported_only_when_the_function_first_logs() -> None:
    code = (
        "import sys, logging\nfrom token_vendor.kernel import observability\n"
        "print('aws_lambda_powertools' in sys.modules)\n"
        "logging.getLogger('token_vendor').getChild('x').warning('first', extra={'reason': 'r'})\n"
        "print('aws_lambda_powertools' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    before, record, after = result.stdout.splitlines()
    assert (before, after) == ("False", "True")
    logged = json.loads(record)
    assert (logged["level"], logged["message"], logged["reason"]) == ("WARNING", "first", "r")
    assert logged["service"] == "token_vendor"
