"""A small model of what AWS evaluates when a role calls an API, for tests/template/test_authorization.py.

Two parts: ``Stack`` resolves a transformed template's intrinsics (Ref, Fn::Sub, Fn::GetAtt, Fn::If,
Fn::Join, conditions) to concrete test values, and ``allows`` evaluates IAM policy statements against one
request. The rules it encodes, and the page each comes from, are in test_authorization.py's docstring.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "111122223333"
REGION = "eu-west-2"
PARTITION = "aws"
STACK = "aic-token-vendor-test"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0",
}
NO_VALUE = object()
ContextValue = str | Sequence[str]


@dataclass(frozen=True)
class Request:
    """One authorization request: the action, the resource ARN, and the request context AWS builds."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    why: str = ""


class Stack:
    """A transformed template with its parameters at their defaults, resolved the way CloudFormation would."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.template = template
        self.parameters = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self._condition(self.template["Conditions"][name]))
        return self._conditions[name]

    def _condition(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Fn::Equals":
                return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
            if fn == "Fn::Not":
                return not self._condition(arg[0])
            if fn == "Fn::And":
                return all(self._condition(a) for a in arg)
            if fn == "Fn::Or":
                return any(self._condition(a) for a in arg)
            if fn == "Condition":
                return self.condition(arg)
        return self.resolve(node)

    def resources(self, kind: str | None = None) -> dict[str, Any]:
        """The resources that exist (their Condition holds), optionally of one type."""
        return {
            name: r
            for name, r in self.template["Resources"].items()
            if (kind is None or r["Type"] == kind)
            and ("Condition" not in r or self.condition(r["Condition"]))
        }

    def physical_id(self, name: str) -> str:
        resource = self.template["Resources"][name]
        properties = resource.get("Properties", {})
        for member in ("TableName", "FunctionName", "RoleName", "AliasName", "Name"):
            if member in properties:
                return str(self.resolve(properties[member]))
        if resource["Type"] == "AWS::KMS::Key":  # one id per key: a stack may hold more than one
            return KEY_ID if name == "TokenCacheKey" else f"{KEY_ID[: -len(name[:12])]}{name[:12].lower()}"
        return f"{STACK}-{name}"

    def arn(self, name: str) -> str:
        kind = self.template["Resources"][name]["Type"]
        physical = self.physical_id(name)
        service_path = {
            "AWS::IAM::Role": f"iam::{ACCOUNT}:role/{physical}",
            "AWS::KMS::Key": f"kms:{REGION}:{ACCOUNT}:key/{physical}",
            "AWS::DynamoDB::Table": f"dynamodb:{REGION}:{ACCOUNT}:table/{physical}",
            "AWS::Lambda::Function": f"lambda:{REGION}:{ACCOUNT}:function:{physical}",
            "AWS::SQS::Queue": f"sqs:{REGION}:{ACCOUNT}:{physical}",
            "AWS::SNS::Topic": f"sns:{REGION}:{ACCOUNT}:{physical}",
        }.get(kind, f"unknown:{REGION}:{ACCOUNT}:{physical}")
        return f"arn:{PARTITION}:{service_path}"

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = self.template["Resources"][name]["Type"]
        if kind in ("AWS::SNS::Topic",):
            return self.arn(name)
        return self.physical_id(name)

    def _get_att(self, name: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(name)
        return f"{self.physical_id(name)}.{attribute}"

    def _sub(self, arg: Any) -> str:
        text, names = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def one(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in names:
                return str(self.resolve(names[token]))
            if "." in token and token.split(".")[0] in self.template["Resources"]:
                return self._get_att(*token.split(".", 1))
            return str(self._ref(token))

        return re.sub(r"\$\{([^!}][^}]*)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::GetAtt":
                name, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self._get_att(name, attribute)
            if fn == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::Join":
                return str(arg[0]).join(str(x) for x in self.resolve(arg[1]))
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    """IAM wildcards: * any run of characters, ? one character; nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    """ArnLike: each of the six colon-delimited components is matched on its own (``*`` spans no colon)."""
    wanted, have = pattern.split(":", 5), arn.split(":", 5)
    return len(wanted) == len(have) == 6 and all(
        _glob(w, h, case=True) for w, h in zip(wanted, have, strict=True)
    )


def _action_matches(patterns: Any, action: str) -> bool:
    return any(_glob(str(p), action, case=False) for p in _listed(patterns))


def _resource_matches(patterns: Any, resource: str) -> bool:
    return any(_glob(str(p), resource, case=True) for p in _listed(patterns))


_OPERATORS = {
    "StringEquals": lambda want, have: want == have,
    "StringLike": lambda want, have: fnmatch.fnmatchcase(have, want),
    "ArnEquals": lambda want, have: want == have,
    "ArnLike": _arn_like,
    "Bool": lambda want, have: str(want).lower() == str(have).lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, ContextValue]) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    negate = base in _NEGATED
    test = _OPERATORS[_NEGATED.get(base, base)]
    names = {name.lower(): name for name in context}  # context key names ignore case
    if key.lower() not in names:  # ForAllValues holds for an absent key; a negated plain operator too
        return if_exists or qualifier == "ForAllValues" or (negate and not qualifier)
    have = context[names[key.lower()]]
    haves = list(have) if not isinstance(have, str) else [have]
    wants = [str(w) for w in _listed(wanted)]
    if qualifier == "ForAnyValue":
        hit = any(test(w, h) for h in haves for w in wants)
    elif qualifier == "ForAllValues":
        hit = all(any(test(w, h) for w in wants) for h in haves)
    else:
        if len(haves) != 1:
            return False  # a single-valued operator on a multivalued key: no match
        hit = any(test(w, haves[0]) for w in wants)
    return not hit if negate else hit


def statement_matches(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement and not _action_matches(statement["Action"], request.action):
        return False
    if "NotAction" in statement and _action_matches(statement["NotAction"], request.action):
        return False
    if "Resource" in statement and not _resource_matches(statement["Resource"], request.resource):
        return False
    if "NotResource" in statement and _resource_matches(statement["NotResource"], request.resource):
        return False
    return all(
        _condition_holds(operator, key, wanted, request.context)
        for operator, block in statement.get("Condition", {}).items()
        for key, wanted in block.items()
    )


def decision(statements: Sequence[Mapping[str, Any]], request: Request) -> str:
    """ "Deny" (an explicit deny matched), "Allow", or "ImplicitDeny"."""
    matched = [s for s in statements if statement_matches(s, request)]
    if any(s["Effect"] == "Deny" for s in matched):
        return "Deny"
    return "Allow" if any(s["Effect"] == "Allow" for s in matched) else "ImplicitDeny"


def principals_of(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal", {})
    if principal == "*":
        return ["*"]
    return [str(p) for p in _listed(principal.get("AWS", []))]


def key_policy_statements_for(key_policy: Mapping[str, Any], role_arn: str) -> tuple[list[Any], list[Any]]:
    """The key policy's statements that name the role itself, and those that name the account (root)."""
    root = f"arn:{PARTITION}:iam::{ACCOUNT}:root"
    direct, account = [], []
    for statement in key_policy["Statement"]:
        names = principals_of(statement)
        if role_arn in names or "*" in names:
            direct.append(statement)
        if root in names or ACCOUNT in names:
            account.append(statement)
    return direct, account
