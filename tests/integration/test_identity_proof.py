"""Issue 21: caller identity no invoker can forge.

A direct invoker cannot borrow a role by writing an API Gateway event (the vendor function refuses
HTTP-shaped events, the API function refuses everything else); it proves who it is with a signed
sts:GetCallerIdentity that the loopback STS checks. Every malformed proof is refused before any network
call; a refused proof never falls back to DIRECT_INVOKE_SCOPES; proofs are never logged."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from botocore.session import Session

from local.api_front import Identity
from local.lambda_context import LocalContext
from local.quiet_server import QuietThreadingHTTPServer
from local.stack import DEVELOPER_ROLE, LocalStack
from local.sts import identity_xml
from tests.integration.test_http import load
from tests.leak_canary import CANARY, FIGURES
from token_client.identity import IdentityProver
from token_vendor.kernel.errors import AccessDenied, InvalidRequest, UpstreamUnavailable

pytestmark = pytest.mark.integration
ADMIN_ROLE = "arn:aws:iam::123456789012:role/admin-automation"


def _prover(stack: LocalStack, audience: str = "token-vendor", **kwargs: Any) -> IdentityProver:
    session = Session()
    session.set_credentials("testing", "testing", "testing")  # LOCAL_AWS_ENV: the local developer
    return IdentityProver(session, "us-east-1", audience, sts_url=stack.sts.endpoint, **kwargs)


def _proof(stack: LocalStack, **kwargs: Any) -> dict[str, Any]:
    proof = _prover(stack, **kwargs).proof()
    signature = proof["headers"]["Authorization"].rsplit("Signature=", 1)[1]
    CANARY.add_secret(signature, "identity proof signature")
    return proof


@pytest.fixture
def vendor_fn(function_env: Any) -> Any:
    from token_vendor import app

    def call(event: Any) -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(event, LocalContext())
        return result

    return call


# -- forged events ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sample", ["rest_get.json", "function_url.json", "rest_post.json"])
def test_a_complete_forged_http_event_is_refused_by_the_vendor_function(
    sample: str, function_env: Any, vendor_fn: Any, fresh_stack: LocalStack
) -> None:
    """The review's exploit: a hand-written event naming a role CALLER_POLICY grants more to."""
    FIGURES["bad_inputs"] += 1
    function_env(CALLER_POLICY=json.dumps({ADMIN_ROLE: ["fr:am:*", "fr:idm:*"]}), DIRECT_INVOKE_SCOPES="*")
    event = load(sample)
    context = event["requestContext"]
    identity = context.get("identity") or context.get("authorizer", {}).get("iam")
    identity["userArn"] = ADMIN_ROLE.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + "/x"

    with pytest.raises(InvalidRequest, match="is not served by this function"):
        vendor_fn(event)

    assert fresh_stack.standin.token_requests == 0


def test_the_api_function_refuses_a_direct_event(function_env: Any, fresh_stack: LocalStack) -> None:
    from token_vendor import app

    with pytest.raises(InvalidRequest, match="API Gateway and function URL events only"):
        app.http_handler({"scope": "fr:idm:*"}, LocalContext())
    assert fresh_stack.standin.token_requests == 0


# -- proofs that verify ---------------------------------------------------------------------------------
def test_a_proven_caller_gets_its_policys_scopes_and_the_audit_says_so(
    function_env: Any, vendor_fn: Any, fresh_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    function_env(CALLER_POLICY=json.dumps({DEVELOPER_ROLE: ["fr:am:*"]}))  # DIRECT_INVOKE_SCOPES: none
    proof = _proof(fresh_stack)
    capsys.readouterr()

    result = vendor_fn({"scope": "fr:am:*", "identity": proof})

    assert result["scope"] == "fr:am:*"
    audit = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"audit"' in line][-1]
    assert audit["identified"] == "sts-proof"
    assert audit["caller"].endswith(":assumed-role/local-developer/local")
    assert proof["headers"]["Authorization"] not in json.dumps(audit)


def test_the_policy_decides_for_a_proven_caller(
    function_env: Any, vendor_fn: Any, fresh_stack: LocalStack
) -> None:
    function_env(CALLER_POLICY=json.dumps({DEVELOPER_ROLE: ["fr:idm:*"]}), DIRECT_INVOKE_SCOPES="*")

    with pytest.raises(AccessDenied, match="local-developer"):
        vendor_fn({"scope": "fr:am:*", "identity": _proof(fresh_stack)})  # DIRECT_INVOKE_SCOPES is not used
    assert fresh_stack.standin.token_requests == 0


def test_a_remembered_proof_costs_one_sts_call(
    function_env: Any, vendor_fn: Any, fresh_stack: LocalStack
) -> None:
    proof = _proof(fresh_stack)
    before = fresh_stack.sts.calls

    for _ in range(5):
        vendor_fn({"scope": "fr:idm:*", "identity": proof})

    assert fresh_stack.sts.calls - before == 1


# -- proofs refused ---------------------------------------------------------------------------------------
def test_a_proof_sts_refuses_is_access_denied_never_direct_invoke_scopes(
    function_env: Any, vendor_fn: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["bad_inputs"] += 1
    function_env(DIRECT_INVOKE_SCOPES="*")
    proof = _proof(fresh_stack)
    signature = proof["headers"]["Authorization"][-64:]
    proof["headers"]["Authorization"] = proof["headers"]["Authorization"][:-64] + (
        ("1" if signature[0] == "0" else "0") + signature[1:]
    )
    before = fresh_stack.sts.refused

    with pytest.raises(AccessDenied, match="STS refused"):
        vendor_fn({"scope": "fr:idm:*", "identity": proof})

    assert fresh_stack.sts.refused == before + 1
    assert fresh_stack.standin.token_requests == 0


def _mutations(stack: LocalStack) -> dict[str, tuple[Any, type[Exception]]]:
    good = _proof(stack)

    def changed(**changes: Any) -> dict[str, Any]:
        proof = json.loads(json.dumps(good))
        for key, value in changes.items():
            if key == "headers" and isinstance(value, dict):
                proof["headers"].update(value)
            else:
                proof[key] = value
        return proof

    without_auth = changed()
    del without_auth["headers"]["Authorization"]
    unsigned_audience = changed(
        headers={"Authorization": good["headers"]["Authorization"].replace(";x-token-vendor-audience", "")}
    )
    old = time.gmtime(time.time() - 600)
    ahead = time.gmtime(time.time() + 600)
    return {
        "not an object": (["POST"], InvalidRequest),
        "wrong types": (changed(headers=None), InvalidRequest),
        "a header value that is a number": (changed(headers={"X-Extra": 5}), InvalidRequest),
        "17 headers": (changed(headers={f"X-Pad-{i}": "x" for i in range(12)}), InvalidRequest),
        "more than 16 KiB": (changed(headers={"X-Pad": "x" * 17000}), InvalidRequest),
        "no Authorization": (without_auth, InvalidRequest),
        "the instance metadata address": (
            changed(url="http://169.254.169.254/latest/meta-data/"),
            InvalidRequest,
        ),
        "another STS action": (changed(body="Action=AssumeRole&Version=2011-06-15"), InvalidRequest),
        "a GET": (changed(method="GET"), InvalidRequest),
        "a Host that is not the url's": (changed(headers={"Host": "sts.amazonaws.com"}), InvalidRequest),
        "a date 10 minutes old": (
            changed(headers={"X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", old)}),
            AccessDenied,
        ),
        "an audience for another vendor": (_proof(stack, audience="someone-else"), AccessDenied),
        "an audience header that is not signed": (unsigned_audience, InvalidRequest),
        # Issue 30: each of these was an InternalError, went to STS, or reached another host.
        "a date of the right shape that is no date": (
            changed(headers={"X-Amz-Date": "20261399T999999Z"}),
            InvalidRequest,
        ),
        "a date 10 minutes ahead": (
            changed(headers={"X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", ahead)}),
            AccessDenied,
        ),
        "an empty header name": (changed(headers={"": "x"}), InvalidRequest),
        "a header name with a colon": (changed(headers={"X-A:b": "x"}), InvalidRequest),
        "a header name with a leading space": (changed(headers={" X": "x"}), InvalidRequest),
        "a header outside the allow-list": (changed(headers={"X-Forwarded-For": "1.2.3.4"}), InvalidRequest),
        "a header given twice in two cases": (
            changed(headers={"x-amz-date": good["headers"]["X-Amz-Date"]}),
            InvalidRequest,
        ),
        "a header value with a tab": (
            changed(headers={"X-Token-Vendor-Audience": "token-\tvendor"}),
            InvalidRequest,
        ),
        "a backslash before the host": (
            changed(url=good["url"].replace("://", "://EVIL\\@")),
            InvalidRequest,
        ),
        "userinfo before the host": (changed(url=good["url"].replace("://", "://user@")), InvalidRequest),
        "a query": (changed(url=good["url"] + "?Action=AssumeRole"), InvalidRequest),
    }


def test_every_malformed_proof_is_refused_before_any_network_call(
    function_env: Any, vendor_fn: Any, fresh_stack: LocalStack
) -> None:
    function_env(DIRECT_INVOKE_SCOPES="*")
    before = fresh_stack.sts.calls
    for name, (proof, error) in _mutations(fresh_stack).items():
        FIGURES["bad_inputs"] += 1
        with pytest.raises(error) as refused:
            vendor_fn({"scope": "fr:idm:*", "identity": proof})
        assert len(refused.value.message) > 20, name

    assert fresh_stack.sts.calls == before
    assert fresh_stack.standin.token_requests == 0


def test_sts_unreachable_is_upstream_unavailable_within_the_deadline(
    function_env: Any, vendor_fn: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["faults"] += 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    function_env(STS_ENDPOINT_URL=closed)
    proof = _prover(fresh_stack).proof()
    proof = {**proof, "url": closed, "headers": {**proof["headers"], "Host": closed[7:-1]}}
    started = time.monotonic()

    with pytest.raises(UpstreamUnavailable, match="STS could not verify"):
        vendor_fn({"scope": "fr:idm:*", "identity": proof})

    assert time.monotonic() - started < 5
    assert fresh_stack.standin.token_requests == 0


# -- issue 30: the request is the vendor's, and memory serves only the request STS verified --------------
class _EvilSts:
    """A loopback server that answers every POST as STS would for an admin: what a proof sent to an
    address the caller wrote would get."""

    def __init__(self) -> None:
        self.calls = 0
        evil = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

            def do_POST(self) -> None:
                evil.calls += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arn = ADMIN_ROLE.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + "/evil"
                answer = identity_xml(Identity("AKIDEVIL", "evil", None, arn), "evil")
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]


@pytest.fixture
def evil_sts() -> Iterator[_EvilSts]:
    evil = _EvilSts()
    threading.Thread(target=evil.httpd.serve_forever, daemon=True).start()
    yield evil
    evil.httpd.shutdown()
    evil.httpd.server_close()


@pytest.mark.parametrize("separator", ["\\@", "\\\\@", "\\:x@"])
def test_a_backslash_in_the_url_sends_the_proof_nowhere_and_names_no_one(
    separator: str, function_env: Any, vendor_fn: Any, fresh_stack: LocalStack, evil_sts: _EvilSts
) -> None:
    """The review's exploit: the url passes a check made with urlsplit (host: the configured STS) and urllib3
    sent it to the attacker's host, whose answer named a role CALLER_POLICY grants more to."""
    FIGURES["bad_inputs"] += 1
    function_env(CALLER_POLICY=json.dumps({ADMIN_ROLE: ["fr:am:*"], DEVELOPER_ROLE: ["fr:idm:*"]}))
    proof = _proof(fresh_stack)
    proof["url"] = proof["url"].replace("://", f"://127.0.0.1:{evil_sts.port}{separator}")
    before = fresh_stack.sts.calls

    with pytest.raises(InvalidRequest, match="STS_ENDPOINT_URL"):
        vendor_fn({"scope": "fr:am:*", "identity": proof})

    assert evil_sts.calls == 0
    assert fresh_stack.sts.calls == before
    assert fresh_stack.standin.token_requests == 0


def test_a_remembered_signature_with_an_edited_body_or_header_is_not_served_from_memory(
    function_env: Any, vendor_fn: Any, fresh_stack: LocalStack
) -> None:
    FIGURES["bad_inputs"] += 2
    proof = _proof(fresh_stack)
    vendor_fn({"scope": "fr:idm:*", "identity": proof})  # verified, remembered
    calls = fresh_stack.sts.calls

    with pytest.raises(InvalidRequest, match="body"):
        vendor_fn({"scope": "fr:idm:*", "identity": {**proof, "body": proof["body"] + "&Extra=1"}})
    assert fresh_stack.sts.calls == calls  # refused by the parse: nothing looked up, nothing sent

    token = proof["headers"]["X-Amz-Security-Token"]
    edited = {**proof, "headers": {**proof["headers"], "X-Amz-Security-Token": token + "x"}}
    with pytest.raises(AccessDenied, match="STS refused"):
        vendor_fn({"scope": "fr:idm:*", "identity": edited})
    assert fresh_stack.sts.calls == calls + 1  # STS, not memory, decided
    assert fresh_stack.standin.token_requests == 1  # the one vend of the genuine proof
