"""One format for every reader of the table: the vendor's item rules, and `aic-token cache`'s copy."""

from __future__ import annotations

import ast

from token_client import cache_tool
from token_client import item_format as client_format
from token_vendor.adapters.aws import item_format
from tools import item_format as generator


def test_the_client_ships_the_copy_the_vendors_source_writes() -> None:
    assert generator.COPY.read_text() == generator.render()
    assert generator.main(["--check"]) == 0


def test_the_format_imports_nothing_but_the_standard_library() -> None:
    tree = ast.parse(generator.SOURCE.read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "hashlib", "collections", "dataclasses", "typing"}


def test_the_operator_sees_a_lease_held_exactly_while_the_vendor_holds_it() -> None:
    """Until the clock tolerance after its end, and never a lease further ahead than any holder writes."""
    now = 1_000_000.0
    for lease_until, held in [
        (now + 5, True),
        (now - 1, True),  # over by our clock, but a taker waits out the tolerance
        (now - item_format.LEASE_CLOCK_TOLERANCE + 0.01, True),
        (now - item_format.LEASE_CLOCK_TOLERANCE - 0.01, False),
        (now + item_format.MAX_LEASE_SECONDS + 1, False),  # forged
    ]:
        item = {"pk": {"S": "t|a|fr:idm:*"}, "lease_until": {"N": repr(lease_until)}}
        assert client_format.describe(item, now).lease_held is held, lease_until
        assert item_format.lease_held(lease_until, now) is held, lease_until


def test_the_operator_names_a_long_scope_set_by_the_key_the_vendor_computes() -> None:
    scopes = [f"scope-{i:03d}-" + "x" * 100 for i in range(12)]  # a key over 1024 bytes: hashed
    key = item_format.cache_key("tenant.example", "account-1", sorted(scopes))
    assert '"sha256"' in key
    assert client_format.key_names(key, cache_tool.normalise([" ".join(reversed(scopes))]))
    assert not client_format.key_names(key, cache_tool.normalise(scopes[:-1]))
    short = item_format.cache_key("tenant.example", "account-1", ["fr:idm:*"])
    assert client_format.key_names(short, cache_tool.normalise(["fr:idm:*", "fr:idm:*"]))
