"""Rooms of a human size: no module over 400 lines, no class over 250, no function over 60.

Every ``.py`` under functions/, layers/, local/, benchmarks/ and tools/ is parsed with ``ast``. A module
counts all its lines; a class or function counts from its ``class``/``def`` line to its last line, so
decorators above it are not counted and a nested function counts inside its parent as well as alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("functions", "layers", "local", "benchmarks", "tools")
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 400, 250, 60
SKIPPED_PARTS = {".venv", "node_modules", ".aws-sam", "__pycache__", "build"}

# Rooms known to be too big, each to be split and then struck from this list (it may only shrink):
# "path" for a module, "path::Qualified.name" for a class or function. Empty on 2026-12-02.
KNOWN_OVERSIZE: frozenset[str] = frozenset()


def sources() -> list[Path]:
    found = [
        path
        for root in ROOTS
        for path in sorted((REPO / root).rglob("*.py"))
        if not SKIPPED_PARTS & set(path.relative_to(REPO).parts)
    ]
    assert len(found) > 50, "the walk found too few sources: a root moved?"
    return found


def oversize(path: Path) -> dict[str, str]:
    """What in ``path`` is over its limit: ``path`` or ``path::Qualified.name`` -> ``N lines > limit``."""
    text = path.read_text()
    where = path.relative_to(REPO).as_posix()
    found = {}
    if len(text.splitlines()) > MAX_MODULE:
        found[where] = f"{len(text.splitlines())} lines > {MAX_MODULE}"

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                size = (child.end_lineno or child.lineno) - child.lineno + 1  # def line to last line
                limit = MAX_CLASS if isinstance(child, ast.ClassDef) else MAX_FUNCTION
                if size > limit:
                    found[f"{where}::{name}"] = f"{size} lines > {limit}"
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(text, filename=where), "")
    return found


def everything_oversize() -> dict[str, str]:
    return {key: size for path in sources() for key, size in oversize(path).items()}


def test_no_module_class_or_function_is_over_its_limit() -> None:
    unexpected = {key: size for key, size in everything_oversize().items() if key not in KNOWN_OVERSIZE}
    assert not unexpected, "split these into named parts:\n" + "\n".join(
        f"{k}: {v}" for k, v in unexpected.items()
    )


def test_the_known_oversize_list_names_only_rooms_still_too_big() -> None:
    stale = sorted(KNOWN_OVERSIZE - everything_oversize().keys())
    assert not stale, f"no longer too big, strike them from KNOWN_OVERSIZE: {stale}"
