"""Issue 34 item 4: the TokenClientLayer ships the urllib3 the client needs (2), not the runtime's 1.26."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "token_client"


def test_the_layer_build_ships_urllib3_2_pinned_as_the_dependencies_layer(tmp_path: Path) -> None:
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(LAYER), "build-TokenClientLayer",
         f"ARTIFACTS_DIR={tmp_path}", f"PIP={sys.executable} -m pip"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    python = tmp_path / "python"

    assert (python / "token_client" / "client.py").is_file()
    source = (python / "urllib3" / "_version.py").read_text()
    version = re.search(r"__version__ = version = '([0-9.]+)'", source)
    assert version is not None
    assert int(version.group(1).split(".")[0]) >= 2
    pinned = re.search(r"^urllib3==(\S+)$", (ROOT / "layers/dependencies/requirements.txt").read_text(), re.M)
    assert pinned is not None
    assert version.group(1) == pinned.group(1)
    assert not list(python.rglob("__pycache__"))
    assert sorted(p.name for p in python.iterdir() if not p.name.endswith(".dist-info")) == [
        "token_client",
        "urllib3",
    ]
