"""The keyless mode on the local stack: an RSA signing key in (moto's) KMS behind an alias, its public JWK
registered in the AIC stand-in's account, and the function environment that signs with it.

The key is made as template.yaml's ``SigningKey`` is: ``KeySpec`` RSA_2048, ``KeyUsage`` SIGN_VERIFY.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local.stack import LocalStack
from token_vendor.adapters.aws.kms_signer import public_jwk_from_der

SIGNING_ALIAS = "alias/token-vendor-signing"


@dataclass(frozen=True)
class SigningKey:
    arn: str
    public_jwk: dict[str, str]


def create_signing_key(
    stack: LocalStack, description: str = "service account signing key (local)"
) -> SigningKey:
    kms = stack.client("kms")
    metadata = kms.create_key(Description=description, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    arn = metadata["KeyMetadata"]["Arn"]
    return SigningKey(arn, public_jwk_from_der(kms.get_public_key(KeyId=arn)["PublicKey"]))


def point_alias(stack: LocalStack, key: SigningKey, alias: str = SIGNING_ALIAS) -> None:
    """Create the alias, or move it to ``key`` (what the rotation's switch does)."""
    kms = stack.client("kms")
    names = {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
    if alias in names:
        kms.update_alias(AliasName=alias, TargetKeyId=key.arn)
    else:
        kms.create_alias(AliasName=alias, TargetKeyId=key.arn)


def enrol_keyless(stack: LocalStack, alias: str = SIGNING_ALIAS) -> SigningKey:
    """A new signing key behind ``alias``, and AIC (the stand-in) listing only its public JWK."""
    key = create_signing_key(stack)
    point_alias(stack, key, alias)
    stack.standin.set_keys(stack.account_id, [key.public_jwk])
    return key


def keyless_env(stack: LocalStack, alias: str = SIGNING_ALIAS, **overrides: str) -> dict[str, str]:
    """The function's environment in the keyless mode: no secret at all, the account named."""
    settings = {
        "SIGNING_KEY_ID": alias,
        "SERVICE_ACCOUNT_ID": stack.account_id,
        "SERVICE_ACCOUNT_SECRET_ID": "",
    }
    return stack.function_env(**{**settings, **overrides})


def public_keys(stack: LocalStack) -> list[dict[str, Any]]:
    """What the stand-in's account lists now."""
    with stack.standin.state.lock:
        return list(stack.standin.state.accounts[stack.account_id].public_jwks)
