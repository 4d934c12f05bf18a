"""``make run KEYLESS=1`` (issue 35), run as a user would: a fresh process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def test_the_keyless_demo_mints_with_no_private_key_and_rotates_under_load_with_no_failure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local.keyless_demo", "--once"],
        capture_output=True, text=True, check=False, timeout=180, cwd=REPO, env=dict(os.environ),
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "SERVICE_ACCOUNT_SECRET_ID  (not set)" in out
    assert "private keys held by the function: 0" in out
    assert "with the token: 3 users" in out
    assert "tested: AIC issued a token for the new key" in out
    assert "scheduled: the previous KMS key" in out
    vends = re.search(r"vends during the rotation: (\d+), failed: (\d+)", out)
    assert vends is not None, out
    assert int(vends.group(1)) > 0
    assert vends.group(2) == "0"
    kids = re.findall(r"AIC lists +kid (\S+)", out)
    assert len(kids) == 2
    assert kids[0] != kids[1]  # the first key is gone from AIC, the second listed alone
