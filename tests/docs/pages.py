"""The documentation pages and their ```-fenced blocks, each with the marker written just before it.

A marker is an HTML comment on the line right before the opening fence (indented like the fence):
``<!-- run: KIND -->`` (a test runs the block; ``KINDS`` says how; words after the kind are a note for the
reader) or ``<!-- not run: REASON -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`\s]*)\s*$")
MARKER = re.compile(r"^\s*<!-- (?:(?P<run>run): (?P<kind>.+?)|not run: (?P<reason>.+?)) -->\s*$")

# How a test runs each kind of block (tests/docs/test_fenced_blocks.py).
KINDS = {
    "shell": "bash -e -o pipefail, against the local stack (moto holds the stacks' outputs)",
    "shell-prelude": "as shell, and run again before every later shell block of its page",
    "shell-first-aws-call": "bash with no AWS credentials (y on stdin): it gets as far as its first AWS call",
    "python": "a fresh interpreter, against the local stack",
    "json": "parsed",
    "iam-policy": "parsed, and checked as an IAM policy document",
    "sam-template": "cfn-lint, which runs SAM's own transform",
    "demo-output": "every line is one `make run` prints (digits and … stand for anything)",
}
SAME_AS = re.compile(r"^same-as (?P<path>\S+)$")  # the block is that file, which another test runs


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository
    line: int  # the opening fence's line, from 1
    info: str  # the fence's info string: sh, python, json, …
    text: str  # the block's content, dedented by the fence's indentation
    kind: str | None  # the marker's KIND, when it says run
    reason: str | None  # the marker's REASON, when it says not run

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks_of(text: str, page: str) -> list[Block]:
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent = len(opening["indent"])
        end = next((j for j in range(i + 1, len(lines)) if re.fullmatch(r"\s*```\s*", lines[j])), None)
        assert end is not None, f"{page}:{i + 1}: a fence that never closes"
        body = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        kind = marker["kind"] if marker and marker["run"] else None
        if kind is not None and not SAME_AS.match(kind):
            kind = kind.split()[0]  # "shell-first-aws-call (why)": the kind, then a note
        reason = marker["reason"] if marker else None
        found.append(Block(page, i + 1, opening["info"], body, kind, reason))
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [b for path in pages() for b in blocks_of(path.read_text(), str(path.relative_to(REPO)))]


# The pages a user follows (the contract, decisions and security pages quote AWS's and AIC's own names).
USER_PAGES = ("README.md", "docs/deploy.md", "docs/using.md", "docs/operations.md", "docs/reference.md")


def page_text(*names: str) -> str:
    """The pages named, or the user's pages, as one text (a page not written yet is skipped)."""
    chosen = [REPO / n for n in (names or USER_PAGES) if (REPO / n).exists()]
    return "\n".join(p.read_text() for p in chosen)
