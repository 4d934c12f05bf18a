"""Issue 12: the local front verifies SigV4 as the specification (and API Gateway) does."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import socket
import subprocess
from typing import Any
from urllib.parse import urlsplit

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
    """The curl call of docs/using.md: curl signs the query as it is on the command line, so it is written
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


# Chunked request bodies (issue 31): the SDK for Go v1 sends one when the body is given at signing time.

_BODY = json.dumps({"scopes": ["fr:idm:*"], "minValiditySeconds": 300}).encode()


def _raw_request(front: ApiFront, identity: Identity, framing: bytes, signed_body: bytes) -> bytes:
    """A POST signed (by botocore) over ``signed_body`` and sent with ``framing`` after the headers."""
    headers = _sign(identity, "POST", front.token_url, signed_body, {"Content-Type": "application/json"})
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST /v1/token HTTP/1.1\r\nHost: {_host(front)}\r\n{head}".encode() + framing


def _chunked(body: bytes) -> bytes:
    """Three chunks, one with an extension, and a trailer: everything RFC 9112 section 7.1 allows."""
    a, b, c = body[:7], body[7:20], body[20:]
    return (
        b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(a):x}\r\n".encode()
        + a
        + b"\r\n"
        + f"{len(b):X};name=value\r\n".encode()
        + b
        + b"\r\n"
        + f"{len(c):x}\r\n".encode()
        + c
        + b"\r\n"
        + b"0\r\nX-Trailer: ignored\r\n\r\n"
    )


def _answer(sock: socket.socket) -> tuple[int, bytes, bool]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read(), response.will_close


def _signed_get(front: ApiFront, identity: Identity) -> bytes:
    headers = _sign(identity, "GET", front.token_url + "?scope=fr%3Aidm%3A%2A")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"GET /v1/token?scope=fr:idm:* HTTP/1.1\r\nHost: {_host(front)}\r\n{head}\r\n".encode()


def _host(front: ApiFront) -> str:
    return urlsplit(front.token_url).netloc


def _connect(front: ApiFront) -> socket.socket:
    parts = urlsplit(front.token_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def test_a_chunked_body_is_decoded_verified_and_the_connection_stays_in_step(
    front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    with _connect(front) as sock:
        sock.sendall(_raw_request(front, reporting, _chunked(_BODY), _BODY))
        status, data, _ = _answer(sock)
        assert status == 200, data
        assert json.loads(data)["scope"] == "fr:idm:*"

        sock.sendall(_signed_get(front, reporting))  # the same connection: no chunk line was a request
        status, data, _ = _answer(sock)
        assert status == 200, data

    assert (front.forwarded, front.refused) == (2, 0)


def test_a_chunked_body_other_than_the_signed_one_is_refused_and_nothing_more_is_read(
    front: ApiFront, reporting: Identity, fresh_stack: LocalStack
) -> None:
    other = json.dumps({"scopes": ["fr:am:*"]}).encode()
    with _connect(front) as sock:
        sock.sendall(_raw_request(front, reporting, _chunked(other), _BODY))
        status, data, _ = _answer(sock)
        assert status == 403
        assert json.loads(data)["message"].startswith("The request signature we calculated does not match")

        sock.sendall(_signed_get(front, reporting))
        status, data, _ = _answer(sock)
        assert status == 200, data

    assert (front.forwarded, front.refused) == (1, 1)


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        (f"Content-Length: {len(_BODY)}\r\n".encode() + _chunked(_BODY), 400),  # both: a smuggling attempt
        (b"Transfer-Encoding: gzip, chunked\r\n\r\n" + _chunked(_BODY).split(b"\r\n\r\n", 1)[1], 501),
        (b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + _BODY + b"\r\n0\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\n5\r\n" + _BODY + b"\r\n0\r\n\r\n", 400),  # longer than its size
    ],
    ids=["content-length-and-chunked", "gzip-then-chunked", "size-not-hex", "chunk-longer-than-size"],
)
def test_a_body_whose_length_is_uncertain_is_refused_and_the_connection_closed(
    front: ApiFront, reporting: Identity, framing: bytes, status: int
) -> None:
    with _connect(front) as sock:
        sock.sendall(_raw_request(front, reporting, framing, _BODY))
        answered, _, will_close = _answer(sock)
        assert (answered, will_close) == (status, True)
        assert sock.recv(1024) == b""  # closed: what followed is never read as a request

    assert front.forwarded == 0
