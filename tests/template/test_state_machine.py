"""Issue 5: the sample state machine's task payload and ResultSelector, driven against the handler."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from local.aws import load_template
from local.lambda_context import LocalContext

REPO = Path(__file__).resolve().parents[2]


def _path(document: Any, path: str) -> Any:
    """The small JSONPath subset the sample uses: ``$.a.b``."""
    assert path.startswith("$")
    value = document
    for part in filter(None, path[1:].split(".")):
        value = value[part]
    return value


def _apply_selector(selector: dict[str, Any], document: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, expr in selector.items():
        if not key.endswith(".$"):
            out[key] = expr
            continue
        name = key[:-2]
        fmt = re.fullmatch(r"States\.Format\('([^']*)', (\$[\w.]+)\)", expr)
        if fmt:
            out[name] = fmt.group(1).replace("{}", str(_path(document, fmt.group(2))), 1)
        else:
            out[name] = _path(document, expr)
    return out


@pytest.fixture(scope="module")
def task() -> dict[str, Any]:
    machine = load_template(REPO / "template.yaml")["Resources"]["SampleTokenStateMachine"]["Properties"]
    state: dict[str, Any] = machine["Definition"]["States"]["GetToken"]
    return state


def test_the_task_retries_only_upstream_unavailable_and_lambda_faults(task: dict[str, Any]) -> None:
    retried = [e for rule in task["Retry"] for e in rule["ErrorEquals"]]
    assert "UpstreamUnavailable" in retried
    assert not {"InvalidScope", "InvalidRequest", "AccessDenied", "ConfigurationError", "States.ALL"} & set(
        retried
    )
    assert task["Catch"][0]["ErrorEquals"] == ["States.ALL"]


@pytest.mark.integration
def test_the_task_payload_and_result_selector_work_against_the_handler(
    invoke: Any, task: dict[str, Any]
) -> None:
    from token_vendor import app

    payload = task["Parameters"]["Payload"]
    result = app.lambda_handler(payload, LocalContext())
    # lambda:invoke wraps the function's result as {"Payload": …, "StatusCode": 200, …}
    selected = _apply_selector(task["ResultSelector"], {"Payload": result, "StatusCode": 200})

    assert set(selected) == {"authorization", "expiresAt", "scope"}
    assert selected["authorization"] == f"Bearer {result['access_token']}"
    assert selected["scope"] == "fr:idm:*"
    assert selected["expiresAt"] == result["expires_at"]
    assert task["ResultPath"] == "$.token"


@pytest.mark.integration
def test_a_retried_error_is_raised_by_its_stable_name(
    invoke: Any, fresh_stack: Any, task: dict[str, Any]
) -> None:
    from local.aic_standin import Fault
    from token_vendor.kernel.errors import UpstreamUnavailable

    fresh_stack.standin.set_sticky_fault(Fault("status", status=503, retry_after="30"))  # no in-process wait
    with pytest.raises(UpstreamUnavailable) as caught:
        invoke(task["Parameters"]["Payload"])
    # Lambda reports errorType = the exception's class name, which the Retry rule matches.
    assert type(caught.value).__name__ in task["Retry"][0]["ErrorEquals"]
