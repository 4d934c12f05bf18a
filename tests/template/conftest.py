"""The template as SAM transforms it, each deployment variant once a session (tools/transform_template.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.template.iam_model import ACCOUNT, REGION

REPO = Path(__file__).resolve().parents[2]
SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"
SECRET_CMK = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0000aaaa-11bb-22cc-33dd-444455556666"

TRANSFORM_ALL = """
import json, logging, os, sys
sys.path.insert(0, sys.argv[1] + "/tools")
logging.disable(logging.WARNING)
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-2")
from samtranslator.yaml_helper import yaml_parse
from transform_template import TEMPLATE, _variants, transformed

template = yaml_parse(TEMPLATE.read_text())
variants = dict(_variants(template))
variants["secret-cmk"] = {"ResourcePolicyMode": "account", "SecretKmsKeyArn": sys.argv[2]}
variants["alarm-email"] = {"ResourcePolicyMode": "account", "AlarmEmail": "oncall@example.com"}
variants["alarm-topic"] = {"ResourcePolicyMode": "account", "AlarmTopicArn": sys.argv[3]}
print(json.dumps({name: transformed(template, values) for name, values in variants.items()}))
"""


@pytest.fixture(scope="session")
def variants() -> dict[str, dict[str, Any]]:
    """Variant name -> transformed template (parameters at the variant's values, as Defaults)."""
    if not SAM_PYTHON.exists():
        pytest.skip(f"SAM's translator lives in {SAM_PYTHON}; `make test` installs it")
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:platform-alarms"
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", TRANSFORM_ALL, str(REPO), SECRET_CMK, topic],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    document: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return document
