"""The world the pages' shell and Python blocks run in: the local stack, dressed as a deployed one.

moto's CloudFormation holds stacks named as the pages name them (``aic-token-vendor-prod`` and
``aic-token-vendor-dev`` in eu-west-2) whose outputs point at the local fronts, the local Lambda Invoke
endpoint and a table; so ``aws cloudformation describe-stacks … --query …`` and what the pages do with its
answer run as written. Every client signs with the local developer's credentials, which every local
endpoint verifies (SigV4) and the vendor's caller policy grants.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.api_front import ApiFront
from local.aws import LOCAL_AWS_ENV, create_table
from local.lambda_invoke import LOCAL_DEVELOPER, LocalLambda
from local.stack import LocalStack, new_rsa_key, private_jwk
from tests.docs.pages import REPO
from tests.leak_canary import CANARY

REGION = "eu-west-2"  # where the pages deploy; the local endpoints themselves sign for us-east-1
SECRET_NAME = "aic/token-vendor/service-account"


@dataclass
class DocWorld:
    stack: LocalStack
    env: dict[str, str]
    rest: ApiFront
    url: ApiFront
    invoke: LocalLambda

    def client(self, service: str, region: str = REGION) -> Any:
        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            region_name=region,
        )
        return session.client(service, endpoint_url=self.stack.aws.endpoint)  # type: ignore[call-overload]

    def fresh_secret(self, created_by_block: bool) -> None:
        """No secret when the block creates it; else the one an earlier step of the page made."""
        secrets = self.client("secretsmanager")
        with contextlib.suppress(secrets.exceptions.ResourceNotFoundException):
            secrets.delete_secret(SecretId=SECRET_NAME, ForceDeleteWithoutRecovery=True)
        if not created_by_block:
            secrets.create_secret(Name=SECRET_NAME, SecretString="{}")


def _outputs(world: DocWorld, table: str) -> dict[str, str]:
    return {
        "TokenApiUrl": world.rest.token_url,
        "TokenFunctionUrl": world.url.base_url + "/",
        "TokenVendorFunctionArn": world.invoke.arn("token-vendor"),
        "TokenApiFunctionArn": world.invoke.arn("token-api"),
        "KeyRotationFunctionArn": world.invoke.arn("key-rotation"),
        "TokenClientLayerArn": f"arn:aws:lambda:{REGION}:123456789012:layer:TokenClientLayer:1",
        "TokenCacheTableName": table,
    }


def _create_stacks(world: DocWorld, table: str) -> None:
    outputs = {name: {"Value": value} for name, value in _outputs(world, table).items()}
    template = {
        "Resources": {
            "TokenVendorLogGroup": {"Type": "AWS::Logs::LogGroup"},
            "RefreshDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
        },
        "Outputs": outputs,
    }
    for region in (REGION, "us-east-1"):  # us-east-1: where the local endpoints are (a shell set to it)
        cloudformation = world.client("cloudformation", region)
        for name in ("aic-token-vendor-prod", "aic-token-vendor-dev"):
            cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.fixture(scope="module")
def doc_world(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocWorld]:
    from token_vendor import app
    from token_vendor.rotation import rotation_handler

    # A secret of the world's own: the operations page's rotation moves its staging labels.
    secret_id = "token-vendor/doc-world"
    stack.client("secretsmanager").create_secret(Name=secret_id, SecretString=stack.secret_for(stack.key))
    saved = dict(os.environ)
    # The handlers below run in this process, as in the e2e tests.
    os.environ.update(stack.function_env(SERVICE_ACCOUNT_SECRET_ID=secret_id))
    app.reset_runtime()
    identities = {LOCAL_DEVELOPER.access_key: LOCAL_DEVELOPER}
    rest = ApiFront(app.http_handler, identities).start()
    url = ApiFront(app.http_handler, identities, function_url=True).start()
    invoke = LocalLambda({"token-vendor": app.lambda_handler, "key-rotation": rotation_handler}).start()
    bin_dirs = [str(REPO / ".venv" / "bin"), str(REPO / ".venv-clients" / "bin")]
    home = tmp_path_factory.mktemp("home")  # no aws config of the machine's user
    env = {
        "PATH": os.pathsep.join([*bin_dirs, os.environ["PATH"]]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **LOCAL_AWS_ENV,
        "AWS_ENDPOINT_URL": stack.aws.endpoint,
        "AWS_ENDPOINT_URL_LAMBDA": invoke.endpoint,
        "AWS_ENDPOINT_URL_STS": stack.sts.endpoint,
        "REGION": "us-east-1",  # the region the local endpoints sign for
        "TOKEN_URL": rest.token_url,
        "FUNCTION_URL": url.base_url + "/",
        "TENANT_URL": stack.standin.base_url,
        "TOKEN_VENDOR_FUNCTION": "token-vendor",
    }
    world = DocWorld(stack, env, rest, url, invoke)
    table = "aic-token-vendor-prod-token-cache"
    create_table(world.client("dynamodb"), table)
    _create_stacks(world, table)
    try:
        yield world
    finally:
        invoke.stop()
        url.stop()
        rest.stop()
        os.environ.clear()
        os.environ.update(saved)
        app.reset_runtime()


@pytest.fixture
def workdir(tmp_path: Path, doc_world: DocWorld) -> Path:
    """A directory as the pages assume it: the downloaded key.jwk, a caller policy, the clone's .venv,
    and the tenant administrator's token (operations, "The administrator's token")."""
    CANARY.add_secret(doc_world.stack.standin.admin_token, "AIC admin token")
    (tmp_path / "admin-token").write_text(doc_world.stack.standin.admin_token)
    key = new_rsa_key()
    CANARY.register_key(key)
    (tmp_path / "key.jwk").write_text(json.dumps(private_jwk(key)))
    policy = {"arn:aws:iam::123456789012:role/reporting-*": ["fr:idm:*"]}
    (tmp_path / "caller-policy.json").write_text(json.dumps(policy))
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    return tmp_path


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not on this machine")
    return path
