"""The dashboard in template.yaml is what tools/dashboard.py writes from its widget list."""

from __future__ import annotations

import difflib
import json

from local.aws import load_template
from tests.template.iam_model import Stack
from tools import dashboard


def test_the_template_holds_the_dashboard_the_widget_list_writes() -> None:
    held = dashboard.current(dashboard.TEMPLATE.read_text())
    written = dashboard.render()
    diff = "".join(difflib.unified_diff(held.splitlines(True), written.splitlines(True), "template", "tools"))
    assert held == written, f"run `python -m tools.dashboard` to rewrite template.yaml's dashboard:\n{diff}"


def test_each_front_gets_the_widget_list_on_the_grid() -> None:
    template = load_template(dashboard.TEMPLATE)
    titles = [entry[0] for entry in dashboard.WIDGETS if entry != dashboard.HTTP_SLOT]
    slot = dashboard.WIDGETS.index(dashboard.HTTP_SLOT)
    http_titles = {"rest-api": "REST API 4xx / 5xx", "function-url": "Function URL 4xx / 5xx", "none": None}
    for front, http_title in http_titles.items():
        stack = Stack(template)
        stack.parameters["HttpFront"] = front
        body = json.loads(
            stack.resolve(template["Resources"]["TokenVendorDashboard"]["Properties"]["DashboardBody"])
        )
        shown = [w["properties"]["title"] for w in body["widgets"]]
        wanted = titles[:slot] + ([http_title] if http_title else []) + titles[slot:]
        assert shown == wanted, front
        places = [(w["x"], w["y"]) for w in body["widgets"]]
        assert len(set(places)) == len(places), front  # no two widgets on one cell
