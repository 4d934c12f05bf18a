"""Issue 12: the local front verifies SigV4 as the specification (and API Gateway) does."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.api_front import ApiFront, Identity
from local.stack import LocalStack

pytestmark = pytest.mark.e2e


def _sign(
    identity: Identity, method: str, signed_url: str, body: bytes = b"", extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Sign ``signed_url`` with botocore (a client we did not write), which takes the URL as given."""
    request = AWSRequest(method=method, url=signed_url, data=body, headers=extra or {})
    credentials = Credentials(identity.access_key, identity.secret_key, identity.session_token)
    SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_a_client_that_canonicalises_the_raw_query_itself_gets_200(
    front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    """It signs scope=fr%3Aidm%3A%2A (the specification's canonical form) and sends ?scope=fr:idm:* raw,
    as API Gateway accepts. The old botocore-based check refused exactly this."""
    headers = _sign(reporting, "GET", front.token_url + "?scope=fr%3Aidm%3A%2A")
    response = urllib3.PoolManager().request("GET", front.token_url + "?scope=fr:idm:*", headers=headers)

    assert response.status == 200, response.data
    assert response.json()["scope"] == "fr:idm:*"


def test_a_tampered_signature_still_gets_403(front: ApiFront, reporting: Identity) -> None:
    headers = _sign(reporting, "GET", front.token_url + "?scope=fr%3Aidm%3A%2A")
    signature = headers["Authorization"].rsplit("Signature=", 1)[1]
    tampered = ("1" if signature[0] == "0" else "0") + signature[1:]  # always a different signature
    headers["Authorization"] = headers["Authorization"].replace(signature, tampered)
    response = urllib3.PoolManager().request("GET", front.token_url + "?scope=fr:idm:*", headers=headers)

    assert response.status == 403
    assert response.json()["message"].startswith("The request signature we calculated does not match")
    assert front.forwarded == 0


def test_a_body_other_than_the_signed_one_is_refused(front: ApiFront, reporting: Identity) -> None:
    """The signed x-amz-content-sha256 names the signed body; the body that arrives is another."""
    signed_body = json.dumps({"scope": "fr:idm:*"}).encode()
    claimed = {"x-amz-content-sha256": hashlib.sha256(signed_body).hexdigest()}
    headers = _sign(reporting, "POST", front.token_url, signed_body, claimed)
    other = json.dumps({"scope": "fr:am:*"}).encode()
    response = urllib3.PoolManager().request("POST", front.token_url, body=other, headers=headers)

    assert response.status == 403
    assert front.forwarded == 0


def _curl() -> str | None:
    path = shutil.which("curl")
    if path is None:
        return None
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.match(r"curl (\d+)\.(\d+)", version)
    return path if found and (int(found[1]), int(found[2])) >= (7, 75) else None


def test_curl_aws_sigv4_gets_a_token(front: ApiFront, reporting: Identity) -> None:
    """The README's curl call: curl signs the query as it is on the command line, so it is written
    pre-encoded (curl 7.88 does not encode a raw one, as the specification asks)."""
    curl = _curl()
    if curl is None:
        pytest.skip("curl >= 7.75 (for --aws-sigv4) is not installed")
    result = subprocess.run(
        [
            curl,
            "--silent",
            "--show-error",
            "--fail-with-body",
            "--aws-sigv4",
            "aws:amz:us-east-1:execute-api",
            "--user",
            f"{reporting.access_key}:{reporting.secret_key}",
            "--header",
            f"x-amz-security-token: {reporting.session_token}",
            front.token_url + "?scope=fr%3Aidm%3A%2A",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    body: dict[str, Any] = json.loads(result.stdout)
    assert body["scope"] == "fr:idm:*"
