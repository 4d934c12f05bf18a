"""DynamoDB condition and update expressions, for the subset the vendor sends.

The simulated table evaluates the vendor's own expressions, so a change to a condition in the vendor
changes the simulated outcome; the simulator never hard-codes the lease rules. Supported: ``AND``, ``OR``,
``NOT``, parentheses, ``= <> < <= > >=`` between attribute paths, ``#names`` and ``:values``,
``attribute_exists``, ``attribute_not_exists``, ``attribute_type``; updates with ``SET a = :v, …``,
``SET a = a + :v`` and ``REMOVE a, …``. Comparisons follow DynamoDB: numbers compare as numbers, strings
as strings, and a missing attribute or a type mismatch makes the comparison false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

Item = dict[str, dict[str, Any]]
_TOKEN = re.compile(r"\s*(<>|<=|>=|=|<|>|\(|\)|,|\+|[A-Za-z_][A-Za-z0-9_]*|#[A-Za-z0-9_]+|:[A-Za-z0-9_]+)")
_COMPARATORS = {"=", "<>", "<", "<=", ">", ">="}


def tokenize(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if not match:
            if expression[position:].strip() == "":
                break
            raise ValueError(f"cannot parse expression at {expression[position:]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class Condition:
    """Parses once, evaluates against an item (None: no item)."""

    def __init__(self, expression: str, names: Mapping[str, str], values: Mapping[str, Any]) -> None:
        self._tokens = tokenize(expression)
        self._names = names
        self._values = values
        self._position = 0
        self._tree = self._or()
        if self._position != len(self._tokens):
            raise ValueError(f"trailing tokens in {expression!r}")

    # -- parsing ------------------------------------------------------------------------------------
    def _peek(self) -> str | None:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._tokens[self._position]
        if expected is not None and token.upper() != expected:
            raise ValueError(f"expected {expected}, got {token}")
        self._position += 1
        return token

    def _or(self) -> Any:
        node = self._and()
        while (self._peek() or "").upper() == "OR":
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._not()
        while (self._peek() or "").upper() == "AND":
            self._take()
            node = ("and", node, self._not())
        return node

    def _not(self) -> Any:
        if (self._peek() or "").upper() == "NOT":
            self._take()
            return ("not", self._not())
        return self._primary()

    def _primary(self) -> Any:
        token = self._peek()
        if token == "(":
            self._take()
            node = self._or()
            self._take(")")
            return node
        if token in ("attribute_exists", "attribute_not_exists", "attribute_type"):
            function = self._take()
            self._take("(")
            path = self._operand()
            argument = None
            if function == "attribute_type":
                self._take(",")
                argument = self._operand()
            self._take(")")
            return (function, path, argument)
        left = self._operand()
        comparator = self._take()
        if comparator.upper() == "BETWEEN":  # DynamoDB's, inclusive: left >= low AND left <= high
            low = self._operand()
            self._take("AND")
            return ("and", ("cmp", ">=", left, low), ("cmp", "<=", left, self._operand()))
        if comparator not in _COMPARATORS:
            raise ValueError(f"unsupported comparator {comparator}")
        return ("cmp", comparator, left, self._operand())

    def _operand(self) -> Any:
        token = self._take()
        if token.startswith(":"):
            return ("value", self._values[token])
        if token.startswith("#"):
            return ("path", self._names[token])
        return ("path", token)

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, item: Item | None) -> bool:
        return bool(self._eval(self._tree, item or {}))

    def _eval(self, node: Any, item: Item) -> bool:
        kind = node[0]
        if kind == "or":
            return self._eval(node[1], item) or self._eval(node[2], item)
        if kind == "and":
            return self._eval(node[1], item) and self._eval(node[2], item)
        if kind == "not":
            return not self._eval(node[1], item)
        if kind == "attribute_exists":
            return node[1][1] in item
        if kind == "attribute_not_exists":
            return node[1][1] not in item
        if kind == "attribute_type":
            attribute = item.get(node[1][1])
            wanted = node[2][1]["S"]
            return attribute is not None and next(iter(attribute)) == wanted
        return _compare(node[1], _resolve(node[2], item), _resolve(node[3], item))


def _resolve(operand: Any, item: Item) -> dict[str, Any] | None:
    if operand[0] == "value":
        return dict(operand[1])
    return item.get(operand[1])


def _compare(comparator: str, left: dict[str, Any] | None, right: dict[str, Any] | None) -> bool:
    if left is None or right is None:
        return False
    (left_type, left_value), (right_type, right_value) = next(iter(left.items())), next(iter(right.items()))
    if left_type != right_type:
        return False
    if left_type == "N":
        a: Any = Decimal(left_value)
        b: Any = Decimal(right_value)
    elif left_type in ("S", "B"):
        a, b = left_value, right_value
    else:
        return comparator in ("=", "<>") and (left_value == right_value) == (comparator == "=")
    return {
        "=": a == b,
        "<>": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[comparator]


def apply_update(item: Item, expression: str, names: Mapping[str, str], values: Mapping[str, Any]) -> Item:
    """``SET a = :v, b = :w REMOVE c, d`` (either clause optional, in either order)."""
    tokens = tokenize(expression)
    updated = {k: dict(v) for k, v in item.items()}
    clause = None
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token.upper() in ("SET", "REMOVE"):
            clause = token.upper()
            position += 1
            continue
        if token == ",":
            position += 1
            continue
        name = names.get(token, token)
        if clause == "SET":
            if tokens[position + 1] != "=":
                raise ValueError(f"unsupported SET in {expression!r}")
            if position + 3 < len(tokens) and tokens[position + 3] == "+":  # SET a = a + :v (numbers)
                base = item.get(names.get(tokens[position + 2], tokens[position + 2]))
                if base is None or "N" not in base:
                    raise ValueError("an operand of + is missing or not a number")  # DynamoDB refuses it
                added = Decimal(base["N"]) + Decimal(values[tokens[position + 4]]["N"])
                updated[name] = {"N": str(added)}
                position += 5
                continue
            updated[name] = dict(values[tokens[position + 2]])
            position += 3
        elif clause == "REMOVE":
            updated.pop(name, None)
            position += 1
        else:
            raise ValueError(f"unsupported update {expression!r}")
    return updated
