"""Trims botocore's data in the dependencies layer to the services the functions call (issue 37).

botocore ships the model of every AWS service (about 440 folders, 24 MB of the layer's 31 MB) and an
``endpoints.json`` naming every service in every region (1.2 MB). At the first client of each cold start
botocore lists every model folder and parses the whole ``endpoints.json``: about 40 ms of CPU on this
machine, for models the functions never load (benchmarks/results.md, "Cold start"). The layer keeps the
models of ``SERVICES`` only, and an ``endpoints.json`` with every partition as it was (regions, defaults,
variants) but only those services' entries. Files at the top of ``botocore/data`` (``partitions.json``,
``_retry.json``, ``sdk-default-configuration.json``) stay as they are.

Run by the layer's Makefile after pip; ``tests/unit/test_layer_trim.py`` checks that ``SERVICES`` covers
every client the package creates. Usage: python trim_botocore.py LAYER_PYTHON_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

# The clients the package creates (wiring.py: dynamodb, kms, secretsmanager; rotation.py: secretsmanager).
# The STS endpoint of identity proofs comes from partitions.json (partitions.py), not from a client.
SERVICES = ("dynamodb", "kms", "secretsmanager")


def trim(layer: Path, services: tuple[str, ...] = SERVICES) -> list[str]:
    """Remove the other services' models and endpoint entries; returns the model folders removed."""
    data = layer / "botocore" / "data"
    removed = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        if folder.name not in services:
            shutil.rmtree(folder)
            removed.append(folder.name)
    endpoints_file = data / "endpoints.json"
    endpoints = json.loads(endpoints_file.read_text())
    for partition in endpoints["partitions"]:
        partition["services"] = {k: v for k, v in partition["services"].items() if k in services}
    endpoints_file.write_text(json.dumps(endpoints, separators=(",", ":"), sort_keys=True))
    return removed


def main() -> int:
    layer = Path(sys.argv[1])
    removed = trim(layer)
    print(f"trim_botocore: kept the models of {', '.join(SERVICES)}; removed {len(removed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
