"""Issue 32: every AWS call the code makes is allowed on AWS, as AWS evaluates it, in every variant.

The calls are read from the code (every ``<client>.<operation>(`` in the function package, mapped to IAM
actions by botocore's service models); the policies from the template as SAM transforms it
(tools/transform_template.py, every variant, plus one with the secret under a customer managed key). moto
enforces none of this, so nothing else here could see a refusal. The rules the model (iam_model.py) encodes:

1. Evaluation: an explicit Deny wins; otherwise some Allow must match; otherwise the request is implicitly
   denied. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
2. Action / NotAction: ``service:Operation``, case-insensitive, ``*`` and ``?`` wildcards.
   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
3. Resource / NotResource: ARNs, case-sensitive, ``*`` and ``?`` wildcards (no wildcard in the service).
   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
4. Condition: operators AND, keys within an operator AND, values of one key OR; a key absent from the
   request fails the condition unless the operator ends in ``IfExists`` (a negated operator without a set
   qualifier matches an absent key, and so does ``ForAllValues``); ``ForAnyValue``/``ForAllValues`` for
   multivalued keys such as ``kms:ResourceAliases``; context key names ignore case; ``ArnLike`` matches
   each of the six colon-delimited components on its own. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
   and https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
5. KMS: no principal uses a key unless its key policy allows it, either by naming the principal (enough on
   its own) or by allowing the account (``arn:aws:iam::<account>:root``), which lets IAM policies allow it;
   then the identity policy must allow it too.
   https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam
   and https://docs.aws.amazon.com/kms/latest/developerguide/control-access.html
6. KMS condition keys: ``kms:EncryptionContext:<key>`` carries the request's encryption context,
   ``kms:CallerAccount`` the caller's account, ``kms:ResourceAliases`` the key's aliases, and
   ``kms:ViaService`` is present only when an AWS service calls KMS on the caller's behalf.
   https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html
7. DynamoDB with a customer managed (or AWS managed) key: DynamoDB decrypts the table key with a KMS
   ``Decrypt`` whose principal "is the principal in your AWS account who is accessing the table", with the
   encryption context ``aws:dynamodb:tableName`` / ``aws:dynamodb:subscriberId``; the ``aws/dynamodb`` key
   policy allows it by ``kms:ViaService`` = ``dynamodb.<region>.amazonaws.com`` and ``kms:CallerAccount``.
   With the AWS owned key, "DynamoDB does not need additional authorization".
   https://docs.aws.amazon.com/kms/latest/developerguide/services-dynamodb.html ("Authorizing use",
   "Monitoring DynamoDB interaction with AWS KMS": Decrypt)
8. Secrets Manager with a customer managed key: reading a secret value is a KMS ``Decrypt`` and writing one
   a ``GenerateDataKey``, both by the caller through ``secretsmanager.<region>.amazonaws.com``; the key's
   policy is the operator's (docs/deploy.md "The secret"), so only the role's side is checked here.
   https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from tests.template.iam_model import (
    ACCOUNT,
    PARTITION,
    REGION,
    Request,
    Stack,
    decision,
    key_policy_statements_for,
)

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "functions" / "token_vendor" / "token_vendor"
SERVICES = ("dynamodb", "kms", "secretsmanager", "sts", "lambda", "cloudwatch")

VENDOR, API, ROTATION = "TokenVendorFunction", "TokenApiFunction", "KeyRotationFunction"
VENDING = frozenset({VENDOR, API})
# Who runs each call site the code has (module, function, operation). The scan below must find exactly
# these: a new call fails this test until it is listed here and its roles are granted what it needs.
CALL_SITES: dict[tuple[str, str, str], frozenset[str]] = {
    ("envelope", "_data_key_for_encryption", "generate_data_key"): VENDING,
    ("envelope", "_unwrap", "decrypt"): VENDING,
    ("key_source", "_reload", "get_secret_value"): VENDING,
    ("token_table", "read", "get_item"): VENDING,
    ("token_table", "_lease", "update_item"): VENDING,
    ("token_table", "renew", "update_item"): VENDING,
    ("token_table", "store", "put_item"): VENDING,
    ("token_table", "release", "update_item"): VENDING,
    ("use_records", "note_vended", "update_item"): VENDING,
    ("use_records", "recently_vended", "scan"): frozenset({VENDOR}),  # the scheduled refresh only
    ("use_records", "_counted", "update_item"): frozenset({VENDOR}),  # the scheduled refresh's fleet count
    # Keyless (issue 35): the vending roles resolve the alias, read the public key and sign. The rotation
    # function resolves and reads too; it signs only with a pending key whose policy aic-token rotate
    # writes for that one test (not the stack's key: its policy lets only the vending roles sign).
    ("kms_signer", "_resolve", "describe_key"): VENDING | {ROTATION},
    ("kms_signer", "_resolve", "get_public_key"): VENDING | {ROTATION},
    ("kms_signer", "_sign", "sign"): VENDING,
    ("rotation", "_stages", "describe_secret"): frozenset({ROTATION}),
    ("rotation", "_key", "get_secret_value"): frozenset({ROTATION}),
    ("rotation", "create", "put_secret_value"): frozenset({ROTATION}),
    ("rotation", "finish", "update_secret_version_stage"): frozenset({ROTATION}),
    ("rotation", "_label", "update_secret_version_stage"): frozenset({ROTATION}),  # the AICTESTED label
}


def _operations() -> dict[str, tuple[str, str]]:
    """snake_case method -> (IAM service prefix, operation), from botocore's models of the services used."""
    session = botocore.session.get_session()
    table: dict[str, tuple[str, str]] = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        prefix = model.signing_name or service
        for operation in model.operation_names:
            table.setdefault(xform_name(operation), (prefix, operation))
    return table


def aws_calls_in_the_code() -> dict[tuple[str, str, str], str]:
    """Every ``<client>.<operation>(`` in the package: (module, enclosing function, method) -> IAM action."""
    operations = _operations()
    found: dict[tuple[str, str, str], str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                receiver = ast.unparse(node.func.value)  # a botocore client, not AESGCM(...).decrypt
                if node.func.attr in operations and re.search(r"client|secrets_manager", receiver, re.I):
                    prefix, operation = operations[node.func.attr]
                    found[(path.stem, function.name, node.func.attr)] = f"{prefix}:{operation}"
    return found


def test_the_call_sites_listed_are_exactly_the_calls_in_the_code() -> None:
    assert set(aws_calls_in_the_code()) == set(CALL_SITES)


def _envelope_of(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """The key and encryption context the vendor's own code builds from the function's environment."""
    from token_vendor import wiring as runtime
    from token_vendor.kernel.settings import load_settings

    seen: dict[str, Any] = {}

    def recorder(key_id: str, client: object, **kwargs: Any) -> None:
        seen.update(key_id=key_id, context=kwargs["context"])

    monkeypatch.setattr(runtime, "Envelope", recorder)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    runtime.build_vendor(load_settings(env), session=botocore.session.Session())
    return seen["key_id"], seen["context"]


def _kms_keys(stack: Stack) -> dict[str, tuple[str, list[str]]]:
    """Key ARN -> (logical id, aliases) for the stack's own keys."""
    keys = {stack.arn(name): (name, []) for name in stack.resources("AWS::KMS::Key")}
    for alias in stack.resources("AWS::KMS::Alias").values():
        target = str(stack.resolve(alias["Properties"]["TargetKeyId"]))
        for arn, (_, aliases) in keys.items():
            if target in (arn, arn.rsplit("/", 1)[1]):
                aliases.append(str(stack.resolve(alias["Properties"]["AliasName"])))
    return keys


def _table_key(stack: Stack, table: Mapping[str, Any]) -> str | None:
    """The KMS key ARN DynamoDB uses for the table as the caller, or None for the AWS owned key."""
    sse = stack.resolve(table["Properties"].get("SSESpecification", {}))
    if not sse.get("SSEEnabled") or sse.get("SSEType", "KMS") != "KMS":
        return None
    key = str(sse.get("KMSMasterKeyId", "alias/aws/dynamodb"))
    for arn in _kms_keys(stack):
        if key in (arn, arn.rsplit("/", 1)[1]):
            return arn
    return key


def _kms_context(stack: Stack, key_arn: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    aliases = _kms_keys(stack).get(key_arn, ("", []))[1]
    return {"kms:CallerAccount": ACCOUNT, "kms:ResourceAliases": aliases, **extra}


_SIGNING_ACTIONS = frozenset({"kms:Sign", "kms:DescribeKey", "kms:GetPublicKey"})


def _signing_key(stack: Stack, key_id: str) -> str:
    """The ARN of the stack's key that ``SIGNING_KEY_ID`` (an alias) names."""
    for arn, (_, aliases) in _kms_keys(stack).items():
        if key_id in (arn, *aliases):
            return arn
    raise AssertionError(f"SIGNING_KEY_ID {key_id} names none of the stack's keys")


def _key_tags(stack: Stack, key_arn: str) -> dict[str, str]:
    name = _kms_keys(stack)[key_arn][0]
    tags = stack.resolve(stack.template["Resources"][name]["Properties"].get("Tags", []))
    return {str(t["Key"]): str(t["Value"]) for t in tags}


def requests_for(
    stack: Stack, action: str, env: Mapping[str, str], envelope: tuple[str, dict[str, str]] | None
) -> Iterator[Request]:
    """The authorization requests AWS makes when a role performs ``action``, with what services ask of KMS."""
    service = action.split(":", maxsplit=1)[0]
    if service == "dynamodb":
        table_name = env["TOKEN_CACHE_TABLE"]
        yield Request(action, f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{table_name}", why="table")
        tables = [
            t
            for t in stack.resources("AWS::DynamoDB::Table").values()
            if stack.resolve(t["Properties"]["TableName"]) == table_name
        ]
        key = _table_key(stack, tables[0])
        if key is not None:  # rule 7
            yield Request(
                "kms:Decrypt",
                key,
                _kms_context(
                    stack,
                    key,
                    {
                        "kms:ViaService": f"dynamodb.{REGION}.amazonaws.com",
                        "kms:EncryptionContext:aws:dynamodb:tableName": table_name,
                        "kms:EncryptionContext:aws:dynamodb:subscriberId": ACCOUNT,
                    },
                ),
                why=f"DynamoDB decrypts the table key for {action} as the caller",
            )
    elif service == "kms" and action in _SIGNING_ACTIONS:
        if not env.get("SIGNING_KEY_ID"):
            return  # the secret mode never signs with KMS
        key = _signing_key(stack, env["SIGNING_KEY_ID"])
        extra: dict[str, Any] = {f"aws:ResourceTag/{k}": v for k, v in _key_tags(stack, key).items()}
        if action == "kms:Sign":  # what kms_signer sends
            extra.update({"kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256", "kms:MessageType": "RAW"})
        yield Request(action, key, _kms_context(stack, key, extra), why="signing key")
    elif service == "kms":
        assert envelope is not None, f"{action} without TOKEN_CACHE_KEY_ID"
        key, context = envelope
        encryption = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
        yield Request(action, key, _kms_context(stack, key, encryption), why="envelope")
    elif service == "secretsmanager":
        secret = env.get("SERVICE_ACCOUNT_SECRET_ID", "")
        if not secret:
            assert env.get("SIGNING_KEY_ID"), "neither a secret nor a signing key"
            return  # keyless: the key source is never built (tests/integration/test_keyless.py)
        yield Request(action, secret, why="secret")
        secret_key = stack.parameters.get("SecretKmsKeyArn", "")
        kms_action = {"GetSecretValue": "kms:Decrypt", "PutSecretValue": "kms:GenerateDataKey"}.get(
            action.split(":")[1]
        )
        if secret_key and kms_action:  # rule 8
            yield Request(
                kms_action,
                secret_key,
                _kms_context(
                    stack,
                    secret_key,
                    {
                        "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
                        "kms:EncryptionContext:SecretARN": secret,
                    },
                ),
                why=f"Secrets Manager uses the secret's key for {action} as the caller",
            )
    else:
        raise AssertionError(f"no request model for {action}")


def refusals(stack: Stack, role_arn: str, identity: list[Any], request: Request) -> str | None:
    """Why AWS would refuse the request, or None."""
    verdict = decision(identity, request)
    keys = _kms_keys(stack)
    if request.action.startswith("kms:") and request.resource in keys:  # rule 5: the key policy too
        key_policy = stack.resolve(
            stack.template["Resources"][keys[request.resource][0]]["Properties"]["KeyPolicy"]
        )
        direct, account = key_policy_statements_for(key_policy, role_arn)
        if "Deny" in (decision(direct, request), decision(account, request)):
            return "an explicit Deny in the key policy"
        if decision(direct, request) == "Allow":
            return None if verdict != "Deny" else "an explicit Deny in the role's policy"
        if decision(account, request) != "Allow":
            return "the key policy allows neither the role nor the account (IAM) for it"
    if verdict != "Allow":
        return f"the role's policy: {verdict}"
    return None


def _identity_statements(stack: Stack, role: Mapping[str, Any]) -> list[Any]:
    policies = stack.resolve(role["Properties"].get("Policies", []))
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def test_every_role_is_allowed_every_call_its_function_makes(
    variants: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = aws_calls_in_the_code()
    problems: list[str] = []
    checked = 0
    for variant, template in variants.items():
        stack = Stack(template)
        for function_name, function in stack.resources("AWS::Lambda::Function").items():
            role_name = function["Properties"]["Role"]["Fn::GetAtt"][0]
            role_arn = stack.arn(role_name)
            identity = _identity_statements(stack, stack.template["Resources"][role_name])
            env = stack.resolve(function["Properties"]["Environment"])["Variables"]
            envelope = _envelope_of(env, monkeypatch) if env.get("TOKEN_CACHE_KEY_ID") else None
            for site, action in sorted(calls.items()):
                if function_name not in CALL_SITES[site]:
                    continue
                for request in requests_for(stack, action, env, envelope):
                    checked += 1
                    reason = refusals(stack, role_arn, identity, request)
                    if reason:
                        problems.append(
                            f"{variant}: {function_name} {site[0]}.{site[1]} -> "
                            f"{request.action} on {request.resource} ({request.why}): {reason}"
                        )
    assert checked > 100, checked
    assert not problems, "\n".join(problems)


def _operator_actions() -> list[str]:
    """What the operations page tells operators `aic-token cache` needs."""
    text = (REPO / "docs" / "operations.md").read_text()
    sentence = re.search(r"\*\*Operators\*\* inspect and flush the shared cache with (.+?)\n\n", text, re.S)
    assert sentence, "docs/operations.md: the operators' paragraph on aic-token cache"
    return re.findall(r"`(dynamodb:\w+|kms:\w+)`", sentence.group(1))


def test_aic_token_cache_needs_only_what_operations_md_says(variants: dict[str, dict[str, Any]]) -> None:
    """The operator's tool (token_client/cache_tool.py) scans and deletes items: with the permissions the
    operations page lists, on the table alone, every call it makes is allowed, KMS included (rule 7)."""
    source = (REPO / "layers" / "token_client" / "python" / "token_client" / "cache_tool.py").read_text()
    operations = _operations()
    called = sorted(
        {f"{operations[m][0]}:{operations[m][1]}" for m in re.findall(r"_client\.(\w+)\(", source)}
    )
    assert called == ["dynamodb:DeleteItem", "dynamodb:Scan"]
    for variant, template in variants.items():
        stack = Stack(template)
        table = stack.physical_id("TokenCacheTable")
        table_arn = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
        operator = [{"Effect": "Allow", "Action": _operator_actions(), "Resource": table_arn}]
        role = f"arn:{PARTITION}:iam::{ACCOUNT}:role/operator"
        for action in called:
            for request in requests_for(stack, action, {"TOKEN_CACHE_TABLE": table}, None):
                assert refusals(stack, role, operator, request) is None, (variant, request)


def test_the_evaluator_follows_the_rules_it_cites() -> None:
    """Rules 1-4 on small cases, so a pass above means what it says."""
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{'1' * 8}"
    via = {
        "kms:ViaService": "dynamodb.eu-west-2.amazonaws.com",
        "kms:ResourceAliases": ["alias/a", "alias/b"],
    }
    allow = {"Effect": "Allow", "Action": "KMS:Decr*", "Resource": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"}
    assert decision([allow], Request("kms:Decrypt", key)) == "Allow"  # actions ignore case; wildcards
    assert decision([allow], Request("kms:Encrypt", key)) == "ImplicitDeny"
    deny = {"Effect": "Deny", "NotAction": "kms:Encrypt", "Resource": "*"}
    assert decision([allow, deny], Request("kms:Decrypt", key)) == "Deny"  # an explicit deny wins
    needs_via = {
        **allow,
        "Condition": {"StringEquals": {"kms:ViaService": "dynamodb.eu-west-2.amazonaws.com"}},
    }
    assert decision([needs_via], Request("kms:Decrypt", key)) == "ImplicitDeny"  # an absent key fails
    assert decision([needs_via], Request("kms:Decrypt", key, via)) == "Allow"
    if_exists = {**allow, "Condition": {"StringEqualsIfExists": {"kms:ViaService": "x"}}}
    assert decision([if_exists], Request("kms:Decrypt", key)) == "Allow"
    any_alias = {**allow, "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/b"}}}
    assert decision([any_alias], Request("kms:Decrypt", key, via)) == "Allow"
    single = {**allow, "Condition": {"StringEquals": {"kms:ResourceAliases": "alias/b"}}}
    assert decision([single], Request("kms:Decrypt", key, via)) == "ImplicitDeny"  # multivalued key
    not_equals = {**allow, "Condition": {"StringNotEquals": {"kms:ViaService": "s3.eu-west-2.amazonaws.com"}}}
    assert decision([not_equals], Request("kms:Decrypt", key, via)) == "Allow"
    arn_like = {
        "Effect": "Allow",
        "Action": "*",
        "Resource": "*",
        "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:sqs:*:*:q"}},
    }
    assert (
        decision([arn_like], Request("sqs:SendMessage", "x", {"aws:SourceArn": "arn:aws:sqs:eu-west-2:1:q"}))
        == "Allow"
    )
    bool_ = {
        "Effect": "Allow",
        "Action": "*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}},
    }
    assert decision([bool_], Request("s3:GetObject", "x", {"aws:SecureTransport": "True"})) == "Allow"
    resource_case = {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:dynamodb:*:*:table/T"}
    assert (
        decision([resource_case], Request("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/t"))
        == "ImplicitDeny"
    )


def test_the_evaluator_follows_aws_on_key_case_absent_sets_and_arn_segments() -> None:
    """Three rules AWS documents that a laxer or stricter model would get wrong, each able to turn a Deny
    the template may gain into a false pass: context key names ignore case ("Context key names are not
    case-sensitive", reference_policies_elements_condition.html); ``ForAllValues`` matches a key absent
    from the request; ``ArnLike`` checks each of the six colon-delimited components separately, so ``*``
    never spans a colon (reference_policies_elements_condition_operators.html)."""
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{'1' * 8}"
    via = {"kms:ViaService": "dynamodb.eu-west-2.amazonaws.com"}
    deny_mixed_case = {
        "Effect": "Deny",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"StringEquals": {"KMS:viaservice": "dynamodb.eu-west-2.amazonaws.com"}},
    }
    allow = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}
    assert decision([allow, deny_mixed_case], Request("kms:Decrypt", key, via)) == "Deny"
    deny_all_values = {
        "Effect": "Deny",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"kms:ResourceAliases": "alias/x"}},
    }
    assert decision([allow, deny_all_values], Request("kms:Decrypt", key)) == "Deny"
    arn_like = {
        "Effect": "Allow",
        "Action": "*",
        "Resource": "*",
        "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:sqs:*:q"}},
    }
    source = {"aws:SourceArn": "arn:aws:sqs:eu-west-2:1:q"}
    assert decision([arn_like], Request("sqs:SendMessage", "x", source)) == "ImplicitDeny"
