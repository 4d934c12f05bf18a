"""Everything ``make run`` and the integration tests need, started on loopback and seeded.

A generated service-account key is stored in Secrets Manager (the JSON form of CONTRACT section 3) and
registered at the stand-in; the table and the KMS key are made from ``template.yaml``'s definitions.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from local.aic_standin import AICStandIn
from local.api_front import Identity
from local.aws import LOCAL_AWS_ENV, LocalAws, create_table
from local.sts import LocalSts

TENANT = "openam-local-standin.id.forgerock.io"
DEFAULT_SCOPES = ("fr:idm:*", "fr:am:*", "fr:idc:esv:read")


def new_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """A JWK shaped like AIC's downloaded ``key.jwk``: d dp dq e kty n p q qi, no kid, no alg."""
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key))
    return {k: jwk[k] for k in ("d", "dp", "dq", "e", "kty", "n", "p", "q", "qi")}


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return jwk


REPORTING_ROLE = "arn:aws:iam::123456789012:role/reporting"
DEVELOPER_ROLE = "arn:aws:iam::123456789012:role/local-developer"  # LOCAL_AWS_ENV's credentials


def local_identities() -> dict[str, Identity]:
    """Signing credentials the local API front knows, each mapped to a role session like STS would."""
    return {
        "ASIALOCALREPORTING01": Identity(
            "ASIALOCALREPORTING01",
            secrets.token_urlsafe(30),
            secrets.token_urlsafe(40),
            "arn:aws:sts::123456789012:assumed-role/reporting/local-session",
        ),
        "ASIALOCALINTRUDER001": Identity(
            "ASIALOCALINTRUDER001",
            secrets.token_urlsafe(30),
            None,
            "arn:aws:sts::123456789012:assumed-role/intruder/local-session",
        ),
    }


def signing_session(identity: Identity, region: str = "us-east-1") -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=identity.access_key,
        aws_secret_access_key=identity.secret_key,
        aws_session_token=identity.session_token,
        region_name=region,
    )


@dataclass
class LocalStack:
    aws: LocalAws
    standin: AICStandIn
    sts: LocalSts
    session: boto3.session.Session
    account_id: str
    key: rsa.RSAPrivateKey
    secret_id: str = "token-vendor/service-account"
    table_name: str = "token-vendor-cache"
    kms_key_id: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def aws_env(self) -> dict[str, str]:
        # Clients sign identity proofs for the loopback STS (botocore honours AWS_ENDPOINT_URL_STS).
        return {
            **LOCAL_AWS_ENV,
            "AWS_ENDPOINT_URL": self.aws.endpoint,
            "AWS_ENDPOINT_URL_STS": self.sts.endpoint,
        }

    def function_env(self, **overrides: str) -> dict[str, str]:
        """The Lambda environment for a function pointed at this stack."""
        env = {
            **self.aws_env,
            "TENANT_FQDN": TENANT,
            "SERVICE_ACCOUNT_SECRET_ID": self.secret_id,
            "TOKEN_CACHE_TABLE": self.table_name,
            "TOKEN_ENDPOINT_URL": self.standin.token_url,
            "TOKEN_CACHE_KEY_ID": self.kms_key_id,
            "STS_ENDPOINT_URL": self.sts.endpoint,
            # A Lambda caller proving its identity as the local developer gets any scope the account has.
            "CALLER_POLICY": json.dumps({DEVELOPER_ROLE: ["*"]}),
            # The local stack lets direct invokers have any scope; deployments name theirs (deny by default).
            "DIRECT_INVOKE_SCOPES": "*",
            "POWERTOOLS_SERVICE_NAME": "token_vendor",
            "POWERTOOLS_METRICS_NAMESPACE": "TokenVendor",
            **self.extra_env,
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v != ""}

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.aws.endpoint)  # type: ignore[call-overload]

    def put_secret(self, secret: str) -> str:
        """Store a new secret version (a rotation); returns its version id."""
        response = self.client("secretsmanager").put_secret_value(
            SecretId=self.secret_id, SecretString=secret
        )
        return str(response["VersionId"])

    def secret_for(self, key: rsa.RSAPrivateKey) -> str:
        return json.dumps({"serviceAccountId": self.account_id, "jwk": private_jwk(key)})

    def stop(self) -> None:
        self.standin.stop()
        self.sts.stop()
        self.aws.stop()


def start_stack(*, scopes: tuple[str, ...] = DEFAULT_SCOPES) -> LocalStack:
    aws = LocalAws().start()
    standin = AICStandIn().start()
    sts = LocalSts().start()
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=LOCAL_AWS_ENV["AWS_SESSION_TOKEN"],
        region_name=LOCAL_AWS_ENV["AWS_DEFAULT_REGION"],
    )
    key = new_rsa_key()
    stack = LocalStack(aws, standin, sts, session, str(uuid.uuid4()), key)
    standin.register_account(stack.account_id, [public_jwk(key)], scopes)
    stack.client("secretsmanager").create_secret(Name=stack.secret_id, SecretString=stack.secret_for(key))
    kms = stack.client("kms").create_key(Description="token cache envelope key (local)")
    stack.kms_key_id = kms["KeyMetadata"]["KeyId"]
    create_table(stack.client("dynamodb"), stack.table_name)
    return stack


@contextmanager
def running_stack(**kwargs: Any) -> Iterator[LocalStack]:
    stack = start_stack(**kwargs)
    try:
        yield stack
    finally:
        stack.stop()
