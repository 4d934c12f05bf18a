"""Issue 34: docs/operations.md has one runbook entry per alarm in template.yaml, and each says what the
alarm means, what to run first and what fixes it."""

from __future__ import annotations

import re

from local.aws import load_template
from tests.docs.pages import REPO

OPERATIONS = REPO / "docs" / "operations.md"


def entries(page: str) -> dict[str, str]:
    """Alarm name -> its entry's text, from the ### headings under "## Alarms"."""
    alarms = page[page.index("\n## Alarms\n") :]
    alarms = alarms[: alarms.index("\n## ", 1)]
    parts = re.split(r"^### (\w+)\n", alarms, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_runbook_has_an_entry_for_each_alarm_and_no_other() -> None:
    resources = load_template()["Resources"]
    alarms = {name for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(entries(OPERATIONS.read_text())) == alarms


def test_each_entry_says_what_it_means_what_to_run_first_and_what_fixes_it() -> None:
    for name, text in entries(OPERATIONS.read_text()).items():
        assert "**Means:**" in text, name
        assert "**First:**" in text or "**First and fix:**" in text, name
        assert "**Fix:**" in text or "**First and fix:**" in text, name
