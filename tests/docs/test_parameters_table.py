"""Issue 34: docs/deploy.md's parameter table is template.yaml's Parameters: every name, its default and
its allowed values, so a newcomer never has to read the template to deploy."""

from __future__ import annotations

import re
from typing import Any

from local.aws import load_template
from tests.docs.pages import REPO

DEPLOY = REPO / "docs" / "deploy.md"


def table_rows(page: str) -> dict[str, tuple[str, str]]:
    """parameter -> (default cell, allowed cell), from the rows between the table's markers."""
    table = page[page.index("<!-- parameters-table -->") : page.index("<!-- /parameters-table -->")]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0])
        if name is not None:
            rows[name[1]] = (cells[1], cells[2])
    return rows


def default_cell(spec: dict[str, Any]) -> str:
    if "Default" not in spec:
        return "required"
    return f"`{spec['Default']}`" if str(spec["Default"]) != "" else '`""`'


def test_the_table_names_every_parameter_and_no_other() -> None:
    parameters = load_template()["Parameters"]
    assert list(table_rows(DEPLOY.read_text())) == list(parameters)  # the template's order, too


def test_each_default_is_the_templates() -> None:
    parameters = load_template()["Parameters"]
    rows = table_rows(DEPLOY.read_text())
    wrong = {n: (rows[n][0], default_cell(s)) for n, s in parameters.items() if rows[n][0] != default_cell(s)}
    assert not wrong, wrong


def test_each_list_of_allowed_values_is_the_templates() -> None:
    parameters = load_template()["Parameters"]
    rows = table_rows(DEPLOY.read_text())
    for name, spec in parameters.items():
        listed = re.findall(r"`([^`]+)`", rows[name][1])
        if "AllowedValues" in spec:
            assert listed == [str(v) for v in spec["AllowedValues"]], name
        else:
            assert not listed, f"{name}: the table lists values the template does not restrict it to"
        if "MinValue" in spec or "MaxValue" in spec:
            dash = "\N{EN DASH}"  # as the page writes a range
            bound = f"{spec.get('MinValue', '')}{dash}{spec['MaxValue']}" if "MaxValue" in spec else None
            assert (bound or f"{spec['MinValue']} or more") in rows[name][1], name


def test_the_table_reader_sees_a_changed_default() -> None:
    page = DEPLOY.read_text().replace("| `HttpFront` | `rest-api` |", "| `HttpFront` | `function-url` |")
    assert table_rows(page)["HttpFront"][0] == "`function-url`"
