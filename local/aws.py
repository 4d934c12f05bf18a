"""moto in server mode on loopback, and the AWS resources built from ``template.yaml``'s own definitions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "template.yaml"

LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML; an intrinsic tag becomes {"Fn::Tag": value}, like its long form."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return document


def table_definition(template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The token table exactly as ``template.yaml`` declares it (key schema, attributes, TTL)."""
    resources = (template or load_template())["Resources"]
    return dict(resources["TokenCacheTable"]["Properties"])


def create_table(dynamodb: Any, name: str, template: dict[str, Any] | None = None) -> None:
    props = table_definition(template)
    dynamodb.create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"],
    )
    ttl = props["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]},
    )


class LocalAws:
    """A moto server bound to 127.0.0.1 on a free port (it would listen on every interface otherwise)."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> LocalAws:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()
