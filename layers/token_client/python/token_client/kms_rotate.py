"""``aic-token rotate`` for a keyless stack (issue 35): the next key is a new KMS key, make-before-break.

Start (the operator's credentials: administrators may create keys and move aliases, never sign):
1. a new KMS key (RSA_2048, SIGN_VERIFY) with the current key's policy and tags, plus, for the test alone,
   a statement letting the stack's KeyRotationFunction sign with it;
2. its public JWK (the rotation function's status step) added to the account's ``jwks`` beside the key in
   use (``Idm.change``: never a key set without the key the fleet signs with);
3. one exchange at AIC signed by the new key (the rotation function's test step) proves AIC accepts it;
4. the new key's policy put back to the current key's (the rotation function can no longer sign), then
   the alias moved to it (``kms:UpdateAlias``): every container follows within 5 minutes.

``--finish`` (after those 5 minutes): every key but the alias's removed from ``jwks``; the previous KMS key
(the ``TokenVendorPreviousKey`` tag of the current one) scheduled for deletion only once AIC no longer lists
it. A failed test leaves the alias alone and schedules the never-used new key's deletion.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from token_client.errors import SetupError, TokenClientError, TransportError
from token_client.jwk_numbers import key_numbers, lists

PREVIOUS_TAG = "TokenVendorPreviousKey"
TEST_SID = "RotationTestOnly"
DELETION_WINDOW_DAYS = 30


def _key_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _kms_call(kms: Any, operation: str, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(kms, operation)(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("AccessDeniedException", "NotFoundException"):
            raise SetupError(
                f"KMS refused {operation} ({code}): run this with a key administrator's rights"
            ) from exc
        raise TransportError(f"KMS {operation} failed ({code})") from exc
    except BotoCoreError as exc:
        raise TransportError(f"KMS unreachable ({type(exc).__name__})") from exc


def test_policy(policy: str, role_arn: str) -> str:
    """The current key's policy plus one statement: the rotation function may sign (the test)."""
    document = json.loads(policy)
    statements = [s for s in document.get("Statement", []) if s.get("Sid") != TEST_SID]
    statements.append(
        {
            "Sid": TEST_SID,
            "Effect": "Allow",
            "Principal": {"AWS": role_arn},
            "Action": "kms:Sign",
            "Resource": "*",
        }
    )
    return json.dumps({**document, "Statement": statements})


class KeylessRotation:
    """The steps over the stack's alias; ``step`` invokes the rotation function, ``idm`` is AIC."""

    def __init__(self, args: argparse.Namespace, kms: Any, lambda_client: Any, step: Any, write: Any) -> None:
        self._args = args
        self._kms = kms
        self._lambda = lambda_client
        self._step = step
        self._write = write

    def start(self, idm: Any, status: dict[str, Any], numbers: Any) -> None:
        alias, current = status["signingKeyId"], status["AWSCURRENT"]["keyArn"]
        policy = _kms_call(self._kms, "get_key_policy", KeyId=_key_id(current), PolicyName="default")[
            "Policy"
        ]
        tags = _kms_call(self._kms, "list_resource_tags", KeyId=_key_id(current)).get("Tags", [])
        role = self._lambda.get_function_configuration(FunctionName=self._args.function)["Role"]
        created = _kms_call(
            self._kms,
            "create_key",
            Policy=test_policy(policy, role),
            KeySpec="RSA_2048",
            KeyUsage="SIGN_VERIFY",
            Description=f"AIC service account signing key, next after {current}",
            Tags=[t for t in tags if t["TagKey"] != PREVIOUS_TAG]
            + [{"TagKey": PREVIOUS_TAG, "TagValue": current}],
        )
        new = created["KeyMetadata"]["Arn"]
        self._write(f"created: KMS key {new} (RSA_2048, SIGN_VERIFY), not yet in service\n")
        try:
            described = self._step({"action": "status", "signingKeyId": new})["key"]
            public, new_numbers = described["publicJwk"], key_numbers(described["publicJwk"])
            if new_numbers is None:
                raise SetupError("the rotation function answered no usable public key for the new KMS key")
            added = idm.change(lambda keys: keys if lists(keys, new_numbers) else [*keys, public], numbers)
            had = "already had" if added == 0 else "now has"
            self._write(f"set: AIC {had} the new public key beside the old one\n")
            payload: dict[str, Any] = {"action": "test", "signingKeyId": new}
            if self._args.scope:
                payload["scopes"] = self._args.scope
            tested = self._step(payload)
        except TokenClientError:
            _kms_call(self._kms, "put_key_policy", KeyId=_key_id(new), PolicyName="default", Policy=policy)
            _kms_call(self._kms, "schedule_key_deletion", KeyId=_key_id(new), PendingWindowInDays=7)
            self._write(f"failed: the new key {new} was never in service and is scheduled for deletion\n")
            raise
        self._write(f"tested: AIC issued a token for the new key (expires_in {tested.get('expiresIn')})\n")
        # Sealed before it serves: from here only the vending roles may sign with it.
        _kms_call(self._kms, "put_key_policy", KeyId=_key_id(new), PolicyName="default", Policy=policy)
        _kms_call(self._kms, "update_alias", AliasName=alias, TargetKeyId=_key_id(new))
        self._write(
            f"switched: {alias} now names {new}; the fleet signs with it within 5 minutes. Then run: "
            f"aic-token rotate --function {self._args.function} --idm-url {self._args.idm_url} --finish\n"
        )

    def finish(self, idm: Any, status: dict[str, Any], numbers: Any) -> None:
        current = status["AWSCURRENT"]["keyArn"]
        removed = idm.change(lambda keys: [k for k in keys if key_numbers(k) == numbers], numbers)
        self._write(f"finished: removed {removed} old key(s) from AIC; it keeps the key in use ({current})\n")
        tags = _kms_call(self._kms, "list_resource_tags", KeyId=_key_id(current)).get("Tags", [])
        previous = next((t["TagValue"] for t in tags if t["TagKey"] == PREVIOUS_TAG), None)
        if previous is None:
            return
        state = _kms_call(self._kms, "describe_key", KeyId=_key_id(previous))["KeyMetadata"].get("KeyState")
        if state == "PendingDeletion":
            self._write(f"the previous KMS key {previous} is already scheduled for deletion\n")
            return
        old = key_numbers(self._step({"action": "status", "signingKeyId": previous})["key"]["publicJwk"])
        if old is None or lists(idm.read()[1], old):
            self._write(
                f"kept: AIC still lists the previous KMS key {previous}; it is not scheduled for deletion\n"
            )
            return
        _kms_call(
            self._kms,
            "schedule_key_deletion",
            KeyId=_key_id(previous),
            PendingWindowInDays=DELETION_WINDOW_DAYS,
        )
        self._write(
            f"scheduled: the previous KMS key {previous}, which AIC no longer lists, is deleted in "
            f"{DELETION_WINDOW_DAYS} days (kms cancel-key-deletion undoes it)\n"
        )
