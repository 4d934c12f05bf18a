"""Issue 23: every template name the pages tell a user to use exists (outputs, parameters, resources).

The pages are README.md and docs/*.md (issue 34 moved the README's deploy text to docs/deploy.md)."""

from __future__ import annotations

import re
from pathlib import Path

from local.aws import load_template
from tests.docs.pages import page_text

REPO = Path(__file__).resolve().parents[2]


def test_every_output_key_the_readme_queries_exists() -> None:
    readme = page_text()
    outputs = load_template()["Outputs"]
    queried = set(re.findall(r"OutputKey=='(\w+)'", readme)) | set(
        re.findall(r"\bout [\w-]+ (\w+)\)", readme)
    )
    assert queried, "the pages query no outputs"
    assert queried <= set(outputs), queried - set(outputs)


def test_every_parameter_the_readme_sets_exists() -> None:
    readme = page_text()
    parameters = load_template()["Parameters"]
    named = set(re.findall(r"`([A-Z][A-Za-z]+)=[^`]*`", readme)) | set(
        re.findall(r'"([A-Z][A-Za-z]+)=', readme)
    )
    environment = {n for n in named if n.isupper() or "_" in n}
    template_names = named - environment
    assert template_names, "the pages set no template parameters"
    assert template_names <= set(parameters), template_names - set(parameters)


def test_every_exported_name_the_readme_gives_is_exported() -> None:
    readme = page_text()
    exported = set(re.findall(r"`<stack>-(\w+)`", readme))
    outputs = load_template()["Outputs"]
    assert exported
    for name in exported:
        assert outputs[name]["Export"]["Name"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}"}


def test_the_readme_names_no_resource_by_a_made_up_physical_name() -> None:
    readme = page_text()
    assert "TokenCacheTable-…" not in readme
    assert "--function token-vendor-prod" not in readme
