"""Issue 33: every citation of the contract names a heading of docs/contract.md, in a form known here.

A citation is anything that catches the eye as one (``MENTION``): the word ``CONTRACT``, the file name
``contract.md``, a ``§``, or a lower-case "contract" followed by a section. Each must be read by one of
``FORMS``; one that none reads fails as unrecognised, so a new way of writing citations cannot slip past.
Section numbers must be headings ``## N. Title`` or ``### N.M Title`` of docs/contract.md; an anchor
(``contract.md#…``) must be a heading's GitHub anchor.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "docs" / "contract.md"
THIS = Path(__file__).resolve()

TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".json", ".js", ".mjs", ".sh", ".cfg", ".in", ".txt"}
TEXT_NAMES = {"Makefile", "run"}  # .ci/run
SKIP_DIRS = {"node_modules", "__pycache__", "build", "dist"}

_FILE = r"(?:docs/)?contract\.md"
_DOC = rf"(?:{_FILE}|(?:CONTRACT|[Cc]ontract)(?:'s)?)"
_NUM = r"\d+(?:\.\d+)?"
MENTION = re.compile(rf"{_FILE}|\bCONTRACT\b|\b[Cc]ontract(?:'s)?\s+(?=§|sections?\s+\d)|§")
# Tried in this order at each mention; the first that matches reads it. Group "targets" holds the sections.
FORMS: dict[str, re.Pattern[str]] = {
    "CONTRACT §N": re.compile(rf"{_DOC}\s*§\s?(?P<targets>{_NUM})"),
    "CONTRACT section N": re.compile(rf"{_DOC}\s+section\s+(?P<targets>{_NUM})"),
    "CONTRACT sections N and M": re.compile(
        rf"{_DOC}\s+sections\s+(?P<targets>{_NUM}(?:,\s*{_NUM})*,?\s+and\s+{_NUM})"
    ),
    "CONTRACT N": re.compile(rf"{_DOC}\s+(?P<targets>{_NUM})\b"),
    "§N": re.compile(rf"§\s?(?P<targets>{_NUM})"),
    "contract.md#anchor": re.compile(rf"{_FILE}#(?P<anchor>[\w-]+)"),
    "contract.md": re.compile(rf"{_FILE}(?![\w#])"),  # the page as a whole (a link, "see docs/contract.md")
    "CONTRACT's": re.compile(r"CONTRACT's\b"),  # the contract as a whole ("CONTRACT's default")
}


@dataclass(frozen=True)
class Citation:
    where: str  # path:line
    form: str | None  # None: no form reads it
    targets: tuple[str, ...] = ()  # section numbers, "5" or "5.4"
    anchor: str | None = None
    text: str = ""


def citations(text: str, path: str = "<text>") -> Iterator[Citation]:
    pos = 0
    while (mention := MENTION.search(text, pos)) is not None:
        where = f"{path}:{text.count(chr(10), 0, mention.start()) + 1}"
        for form, pattern in FORMS.items():
            read = pattern.match(text, mention.start())
            if read is not None:
                targets = tuple(re.findall(_NUM, read.groupdict().get("targets") or ""))
                yield Citation(where, form, targets, read.groupdict().get("anchor"), read.group(0))
                pos = read.end()
                break
        else:
            start = mention.start()
            yield Citation(where, None, text=text[start : start + 40].split("\n", maxsplit=1)[0])
            pos = mention.end()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@dataclass(frozen=True)
class Headings:
    sections: frozenset[str]  # "5" and "5.4"
    anchors: frozenset[str]


def headings(contract: str) -> Headings:
    numbered = re.findall(r"^## (\d+)\. |^### (\d+\.\d+) ", contract, flags=re.MULTILINE)
    titles = re.findall(r"^#{1,6} (.+?)\s*$", contract, flags=re.MULTILINE)
    return Headings(frozenset(a or b for a, b in numbered), frozenset(slug(t) for t in titles))


def problems(found: list[Citation], known: Headings) -> list[str]:
    wrong = []
    absent = "not a heading of docs/contract.md"
    for c in found:
        if c.form is None:
            wrong.append(f"{c.where}: a citation in no known form: {c.text!r} (e.g. 'CONTRACT section 5')")
        missing = [t for t in c.targets if t not in known.sections]
        wrong += [f"{c.where}: {c.text!r} names section {t}, {absent}" for t in missing]
        if c.anchor is not None and c.anchor not in known.anchors:
            wrong.append(f"{c.where}: {c.text!r} names anchor #{c.anchor}, {absent}")
    return wrong


def repository_texts() -> dict[str, str]:
    """Every text file of the repository but this one (hidden folders other than .ci, and venvs, skipped)."""
    texts = {}
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [
            d
            for d in dirs
            if d == ".ci" or (d not in SKIP_DIRS and not d.endswith(".egg-info") and not d.startswith("."))
        ]
        for name in files:
            path = Path(root) / name
            if (path.suffix in TEXT_SUFFIXES or name in TEXT_NAMES) and path.resolve() != THIS:
                texts[str(path.relative_to(REPO))] = path.read_text(errors="replace")
    return texts


def check(texts: Mapping[str, str], contract: str) -> tuple[list[Citation], list[str]]:
    found = [c for path, text in sorted(texts.items()) for c in citations(text, path)]
    return found, problems(found, headings(contract))


# -- the repository ----------------------------------------------------------------------------------------


def test_every_citation_in_the_repository_names_a_heading_of_the_contract() -> None:
    found, wrong = check(repository_texts(), CONTRACT.read_text())
    assert not wrong, "\n".join(wrong)
    # The scan is not vacuous: the code cites the contract in dozens of places.
    cited_in_code = [c for c in found if c.where.startswith("functions/") and c.targets]
    assert len(cited_in_code) >= 40, Counter(c.form for c in found)


def test_the_contract_has_sections_1_to_10_and_subsections_numbered_under_them() -> None:
    lines = CONTRACT.read_text().splitlines()
    structure = [line for line in lines if line.startswith("## ") or line.startswith("### ")]
    sections = [re.fullmatch(r"## (\d+)\. \S.*", line) for line in structure if line.startswith("## ")]
    assert all(sections), [line for line in structure if line.startswith("## ")]
    assert [int(m[1]) for m in sections if m] == list(range(1, 11))
    section, sub = 0, 0
    for line in structure:
        if line.startswith("## "):
            section, sub = section + 1, 0
            continue
        sub += 1
        assert re.fullmatch(rf"### {section}\.{sub} \S.*", line), f"expected ### {section}.{sub} …: {line!r}"


def test_every_planned_rule_names_its_issue() -> None:
    """The lead flips the marks as issues land: each reads "(planned: issue 35)", so a grep finds them all."""
    contract = CONTRACT.read_text()
    mark = re.compile(r"\(planned: issue (\d+|N)\)")
    starts = [m.start() - 1 for m in re.finditer("planned", contract)]
    assert len(starts) > 1, "the contract marks no planned rule"
    odd = [contract[s : s + 30] for s in starts if not mark.match(contract, s)]
    assert not odd, odd


def test_section_10_lists_every_subsection_that_reads_the_contract_its_own_way() -> None:
    contract = CONTRACT.read_text()
    parts = re.split(r"^### (\d+\.\d+) ", contract, flags=re.MULTILINE)
    bodies = zip(parts[1::2], parts[2::2], strict=True)
    reading = {number for number, body in bodies if "Our reading:" in body}
    listed = re.search(r"^### 10\.2 .*?\((§.*?)\)", contract, flags=re.MULTILINE | re.DOTALL)
    assert listed, "section 10.2 lists no subsections"
    assert set(re.findall(r"§(\d+\.\d+)", listed[1])) == reading


def test_the_readme_links_the_contract() -> None:
    assert "](docs/contract.md)" in (REPO / "README.md").read_text()


# -- the checker itself ------------------------------------------------------------------------------------

CONTRACT_SAMPLE = """# The contract
## 1. The job
### 1.1 What one deployment does
## 2. Configuration
## 5. Requests and responses
### 5.1 Scopes
### 5.2 Identity proof
"""


@pytest.mark.parametrize(
    ("written", "form", "targets"),
    [
        ("(CONTRACT section 5)", "CONTRACT section N", ("5",)),
        ("CONTRACT sections 1 and 5: the job", "CONTRACT sections N and M", ("1", "5")),
        ("CONTRACT sections 1, 2 and 5.2", "CONTRACT sections N and M", ("1", "2", "5.2")),
        ("Lambda environment (CONTRACT §2).", "CONTRACT §N", ("2",)),
        ("a flush reaches the fleet (CONTRACT 5).", "CONTRACT N", ("5",)),
        ("as docs/contract.md §5.2 says", "CONTRACT §N", ("5.2",)),
        ("as contract.md section 5.1 says", "CONTRACT section N", ("5.1",)),
        ("the contract's section 2 says", "CONTRACT section N", ("2",)),
        ("Identity proofs (§5 says so; §5.1's list)", "§N", ("5",)),
        ("see [docs/contract.md](docs/contract.md)", "contract.md", ()),
        ("MIN = 30.0  # CONTRACT's default", "CONTRACT's", ()),
    ],
)
def test_each_known_form_is_read_with_the_sections_it_names(
    written: str, form: str, targets: tuple[str, ...]
) -> None:
    first = next(citations(written))
    assert (first.form, first.targets) == (form, targets)
    _, wrong = check({"sample.py": written}, CONTRACT_SAMPLE)
    assert wrong == []


def test_an_anchor_is_read_as_a_heading() -> None:
    found, wrong = check({"a.md": "[scopes](docs/contract.md#51-scopes)"}, CONTRACT_SAMPLE)
    assert [(c.form, c.anchor) for c in found] == [("contract.md#anchor", "51-scopes")]
    assert wrong == []


@pytest.mark.parametrize(
    ("written", "missing"),
    [
        ("(CONTRACT section 11)", "section 11"),
        ("(CONTRACT section 5.9)", "section 5.9"),
        ("CONTRACT §3", "section 3"),
        ("CONTRACT 8", "section 8"),
        ("CONTRACT sections 1 and 4", "section 4"),
        ("docs/contract.md §2.1", "section 2.1"),
        ("§7 lists no name", "section 7"),
        ("[x](docs/contract.md#52-scopes)", "anchor #52-scopes"),
    ],
)
def test_a_citation_of_a_missing_section_fails(written: str, missing: str) -> None:
    _, wrong = check({"functions/x.py": f'"""Header.\n\nRule ({written})."""\n'}, CONTRACT_SAMPLE)
    assert len(wrong) == 1
    assert wrong[0].startswith("functions/x.py:3: ")
    assert f"names {missing}," in wrong[0]


@pytest.mark.parametrize(
    "written",
    [
        "CONTRACT, section 5",
        "CONTRACT sec. 5",
        "CONTRACT(5)",
        "as the CONTRACT says",
        "CONTRACT.md section 5",
        "contract §§5-6",
        "CONTRACT\n# section 5",
    ],
)
def test_a_citation_in_an_unknown_form_fails(written: str) -> None:
    _, wrong = check({"x.py": written}, CONTRACT_SAMPLE)
    assert wrong, written
    assert all("no known form" in w for w in wrong), wrong


def test_prose_about_a_contract_is_no_citation() -> None:
    found, _ = check({"x.py": "the contract says; by contract; test_contract_citations.py"}, CONTRACT_SAMPLE)
    assert found == []
