"""moto in server mode on loopback, and the AWS resources built from ``template.yaml``'s own definitions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

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


class _AtomicDynamoDB:
    """DynamoDB applies each conditional write atomically; moto's backend, called from the threaded
    server, does not (two concurrent conditional UpdateItems on a new item can both succeed: seen as two
    mints in about 1 of 15 stampedes). Serialising DynamoDB requests gives the local stack the guarantee
    the lease relies on."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Secrets Manager too: moto moves a staging label in two steps, and a read between them falls back
        # to the version moto first created (seen as a rotated key read as the old one).
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(("DynamoDB_", "secretsmanager.")):
            with self._lock:
                return list(self._app(environ, start_response))  # the whole answer inside the lock
        return self._app(environ, start_response)


class _LoopbackMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = _AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


class LocalAws:
    """A moto server bound to 127.0.0.1 on a free port (it would listen on every interface otherwise)."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = _LoopbackMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> LocalAws:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()
