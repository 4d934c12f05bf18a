"""Issue 37: the dependencies layer keeps botocore's data for the services the functions call, and only them
(layers/dependencies/trim_botocore.py)."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "functions" / "token_vendor" / "token_vendor"


def _trimmer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "trim_botocore", REPO / "layers/dependencies/trim_botocore.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _services_the_package_creates_clients_for() -> set[str]:
    """Every string literal passed to ``create_client(...)`` or ``_client(session, ...)`` in the package."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            arguments = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in ("create_client", "_client") and arguments:
                found.add(arguments[0].value)
    return found


def test_the_layer_keeps_the_model_of_every_client_the_package_creates() -> None:
    created = _services_the_package_creates_clients_for()
    assert created == {"dynamodb", "kms", "secretsmanager"}  # the scan sees the clients
    assert created <= set(_trimmer().SERVICES)


def test_trimming_keeps_the_partitions_and_the_kept_services_endpoints(tmp_path: Path) -> None:
    data = tmp_path / "botocore" / "data"
    for service in ("dynamodb", "kms", "ec2", "s3"):
        (data / service / "2020-01-01").mkdir(parents=True)
        (data / service / "2020-01-01" / "service-2.json.gz").write_bytes(b"model")
    (data / "partitions.json").write_text('{"partitions": []}')
    partition = {"partition": "aws", "regions": {"us-east-1": {}}, "defaults": {"hostname": "h"}}
    endpoints = {
        "version": 3,
        "partitions": [{**partition, "services": {"dynamodb": {"endpoints": {}}, "s3": {"endpoints": {}}}}],
    }
    (data / "endpoints.json").write_text(json.dumps(endpoints))

    removed = _trimmer().trim(tmp_path, ("dynamodb", "kms"))

    assert removed == ["ec2", "s3"]
    assert sorted(p.name for p in data.iterdir()) == ["dynamodb", "endpoints.json", "kms", "partitions.json"]
    trimmed = json.loads((data / "endpoints.json").read_text())
    assert trimmed == {
        "version": 3,
        "partitions": [{**partition, "services": {"dynamodb": {"endpoints": {}}}}],
    }
