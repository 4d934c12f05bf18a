"""SigV4 clients from four ecosystems against the local front, as REST API and as function URL (issue 20).

botocore (Python), awscurl (its own signer), curl ``--aws-sigv4`` (libcurl's) and Node.js with AWS SDK v3's
``@smithy/signature-v4``. None of them was written here. Each signs a GET with a raw query, a GET with two
parameters and a POST with a JSON body; a request tampered after signing (query, body or date) is refused.
The Node.js snippet of docs/using.md is ``examples/node/vend-token.mjs``, run here as the page shows it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.api_front import ApiFront, Identity
from local.stack import LocalStack

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
CLIENTS_BIN = REPO / ".venv-clients" / "bin"
NODE_DIR = REPO / "examples" / "node"
REGION = "us-east-1"


def _need(path: Path, what: str) -> None:
    if not path.exists():
        pytest.skip(f"{what} is not installed ({path}); `make test` installs it")


@pytest.fixture(params=["rest", "function-url"])
def any_front(request: Any, function_env: Any, identities: dict[str, Identity]) -> Iterator[ApiFront]:
    from tests.e2e.conftest import POLICY
    from token_vendor import app

    function_env(CALLER_POLICY=POLICY)
    api = ApiFront(app.http_handler, identities, function_url=request.param == "function-url").start()
    yield api
    api.stop()


def _env(identity: Identity) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=identity.access_key,
        AWS_SECRET_ACCESS_KEY=identity.secret_key,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    if identity.session_token:
        env["AWS_SESSION_TOKEN"] = identity.session_token
    return env


def _run(args: list[str], identity: Identity) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=_env(identity), timeout=60, check=False)


# Each client's way of sending (method, query, body); the answer comes back as (status, JSON body).


def _botocore(front: ApiFront, identity: Identity, method: str, query: str, body: str) -> tuple[int, Any]:
    # botocore takes the URL it signs as already encoded: sign the encoded query, send the raw one.
    signed_query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, value in (part.split("=", 1) for part in query.split("&") if part)
    )
    url = front.token_url + (f"?{signed_query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body.encode(), headers=_json_header(body))
    credentials = Credentials(identity.access_key, identity.secret_key, identity.session_token)
    SigV4Auth(credentials, front.service, REGION).add_auth(request)
    response = urllib3.PoolManager().request(
        method,
        front.token_url + (f"?{query}" if query else ""),
        body=body.encode() or None,
        headers=dict(request.headers.items()),
    )
    return response.status, json.loads(response.data)


def _json_header(body: str) -> dict[str, str]:
    return {"Content-Type": "application/json"} if body else {}


def _awscurl(front: ApiFront, identity: Identity, method: str, query: str, body: str) -> tuple[int, Any]:
    _need(CLIENTS_BIN / "awscurl", "awscurl")
    url = front.token_url + (f"?{query}" if query else "")
    args = [str(CLIENTS_BIN / "awscurl"), "--service", front.service, "--region", REGION, "-X", method, "-v"]
    if body:
        args += ["-H", "Content-Type: application/json", "-d", body]
    result = _run([*args, url], identity)
    status = re.search(r"Response code: ([0-9]{3})", result.stderr)  # -v logs it (pretty-printed)
    assert status, f"awscurl exited {result.returncode} without a response code"
    return int(status.group(1)), json.loads(result.stdout)


def _curl(front: ApiFront, identity: Identity, method: str, query: str, body: str) -> tuple[int, Any]:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not on this machine")
    # curl signs the query exactly as written: send it pre-encoded and sorted (docs/using.md's rule).
    from local.sigv4 import canonical_query

    url = front.token_url + (f"?{canonical_query(query)}" if query else "")
    args = [
        curl,
        "-sS",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--aws-sigv4",
        f"aws:amz:{REGION}:{front.service}",
    ]
    args += ["--user", f"{identity.access_key}:{identity.secret_key}"]
    if identity.session_token:
        args += ["-H", f"x-amz-security-token: {identity.session_token}"]
    if body:
        args += ["-H", "Content-Type: application/json", "--data-raw", body]
    result = _run([*args, url], identity)
    text, _, status = result.stdout.rpartition("\n")
    assert status.isdigit(), result.stderr
    return int(status), json.loads(text)


def _node(front: ApiFront, identity: Identity, method: str, query: str, body: str) -> tuple[int, Any]:
    return _node_request(front, identity, method, query, body, "")


def _node_request(
    front: ApiFront, identity: Identity, method: str, query: str, body: str, tamper: str
) -> tuple[int, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on this machine")
    _need(NODE_DIR / "node_modules" / "@smithy" / "signature-v4", "the Node.js example's packages")
    url = front.token_url + (f"?{query}" if query else "")
    result = _run(
        [node, str(NODE_DIR / "sigv4-request.mjs"), method, url, front.service, body, tamper], identity
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    return answer["status"], json.loads(answer["body"])


CLIENTS = {"botocore": _botocore, "awscurl": _awscurl, "curl": _curl, "node": _node}
REQUESTS = {
    "GET raw query": ("GET", "scope=fr:idm:*", ""),
    "GET two parameters": ("GET", "scope=fr:idm:*&minValiditySeconds=300", ""),
    "POST JSON": ("POST", "", json.dumps({"scopes": ["fr:idm:*"], "minValiditySeconds": 300})),
}


@pytest.mark.parametrize("request_name", list(REQUESTS))
@pytest.mark.parametrize("client", list(CLIENTS))
def test_each_client_is_served(
    client: str, request_name: str, any_front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    method, query, body = REQUESTS[request_name]

    status, answer = CLIENTS[client](any_front, reporting, method, query, body)

    assert status == 200, answer
    assert answer["scope"] == "fr:idm:*"
    assert answer["expires_in"] > 300
    assert any_front.refused == 0


@pytest.mark.parametrize("tamper", ["query", "body", "date"])
def test_a_request_tampered_after_signing_is_refused(
    tamper: str, any_front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    method, query, body = REQUESTS["POST JSON" if tamper == "body" else "GET raw query"]

    status, answer = _node_request(any_front, reporting, method, query, body, tamper)

    assert status == 403
    assert answer["message"].startswith("The request signature we calculated does not match")
    assert (any_front.forwarded, fresh_stack.standin.token_requests) == (0, 0)


def _curl_chunked(front: ApiFront, identity: Identity, method: str, query: str, body: str) -> tuple[int, Any]:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not on this machine")
    args = [
        curl,
        "-sS",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--aws-sigv4",
        f"aws:amz:{REGION}:{front.service}",
    ]
    args += ["--user", f"{identity.access_key}:{identity.secret_key}"]
    if identity.session_token:
        args += ["-H", f"x-amz-security-token: {identity.session_token}"]
    args += ["-H", "Content-Type: application/json", "-H", "Transfer-Encoding: chunked", "--data-raw", body]
    result = _run([*args, front.token_url], identity)
    text, _, status = result.stdout.rpartition("\n")
    assert status.isdigit(), result.stderr
    return int(status), json.loads(text)


def _node_chunked(front: ApiFront, identity: Identity, method: str, query: str, body: str) -> tuple[int, Any]:
    return _node_request(front, identity, method, query, body, "chunked")


@pytest.mark.parametrize("client", ["curl", "node"])
def test_a_body_sent_chunked_is_verified_and_served(
    client: str, any_front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    """Issue 31: signed over the body, sent with Transfer-Encoding: chunked (as the SDK for Go v1 does)."""
    method, query, body = REQUESTS["POST JSON"]
    send = {"curl": _curl_chunked, "node": _node_chunked}[client]

    status, answer = send(any_front, reporting, method, query, body)

    assert status == 200, answer
    assert answer["scope"] == "fr:idm:*"
    assert (any_front.forwarded, any_front.refused) == (1, 0)


def test_the_using_page_shows_the_tested_node_snippet() -> None:
    snippet = (NODE_DIR / "vend-token.mjs").read_text()
    page = (REPO / "docs" / "using.md").read_text()
    block = re.search(r"```js\n(.*?)```", page, re.S)
    assert block, "docs/using.md has no ```js block"
    assert block.group(1) == snippet


def test_the_pages_node_snippet_vends_a_token(
    any_front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on this machine")
    _need(NODE_DIR / "node_modules" / "@smithy" / "signature-v4", "the Node.js example's packages")
    env = {"TOKEN_VENDOR_SERVICE": any_front.service}
    result = subprocess.run(
        [node, str(NODE_DIR / "vend-token.mjs"), any_front.token_url, "fr:idm:*"],
        capture_output=True,
        text=True,
        env={**_env(reporting), **env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scope"] == "fr:idm:*"
    assert fresh_stack.standin.exchanges == 1
