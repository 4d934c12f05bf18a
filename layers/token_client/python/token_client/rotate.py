"""``aic-token rotate``: rotate the service account's key make-before-break, the private key born in AWS.

    aic-token rotate --function ROTATION_FUNCTION --idm-url https://TENANT [--account ID] [--dry-run]
    aic-token rotate --function ROTATION_FUNCTION --idm-url https://TENANT --finish

Start: the rotation function creates a key pair as the secret's AWSPENDING version and answers its public
JWK; this adds that key to the service account's ``jwks`` in AIC (read, then a PATCH of that one field at
the read revision: a concurrent change is retried, never overwritten), has the function make one exchange
with the pending key, and promotes it to AWSCURRENT. The old key keeps working in AIC meanwhile.
``--finish`` (after the fleet signs with the new key: within 5 minutes) removes every other key from
``jwks``. Every step can be rerun. The AIC admin access token is read from ``--admin-token-file`` or
``AIC_ADMIN_TOKEN``, never from an argument. Nothing here sees a private key.

The one rule (CONTRACT section 9): no key set is ever written to AIC without the key the secret's
AWSCURRENT holds, the key the fleet signs with. Keys are compared by their public numbers (``n``, ``e``),
never by ``kid``: a key downloaded from AIC's console has none. A state that would break the rule is
refused before anything is written (``RotationRefused``, exit 7), and so is a clear-text admin endpoint.

A keyless stack (the rotation function's status answers ``"mode": "kms"``) rotates KMS keys instead, with the
same command and the same rule: ``kms_rotate.py``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import urllib3

from token_client.errors import (
    AccessDenied,
    InvalidRequest,
    SetupError,
    TokenClientError,
    TransportError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from token_client.jwk_numbers import Numbers, key_numbers, lists
from token_client.proxies import ProxyAwarePool

PROG = "aic-token rotate"
MAX_CONFLICT_RETRIES = 3
# Lambda's own FunctionName pattern (name, partial or full ARN, optional qualifier); botocore checks only
# the length, so an empty name would otherwise reach it as a ParamValidationError.
_FUNCTION = re.compile(
    r"(arn:aws[a-zA-Z-]*:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d:)?(\d{12}:)?(function:)?[a-zA-Z0-9_-]{1,64}"
    r"(:(\$LATEST|[a-zA-Z0-9_-]{1,128}))?"
)
_NOT_ROTATION = (
    "{function} is not the KeyRotationFunction: it refused the rotation's status step (the token vendor "
    "function takes token requests, not rotation steps); pass the stack output KeyRotationFunctionArn "
    "(deploy with KeyRotation=true)"
)


class RevisionConflict(TokenClientError):
    pass


class RotationRefused(TokenClientError):
    """A step that would leave AIC without the key the fleet signs with, skip a check, or send the admin
    token in clear text: refused before anything is written (exit 7)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see {PROG} --help)\n")
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Rotate the service account's key make-before-break; the new private key is created "
        "inside AWS by the stack's KeyRotationFunction and never printed or written to disk.",
        epilog="The admin token (a tenant administrator's access token, with the IDM scope fr:idm:*) comes "
        "from --admin-token-file or AIC_ADMIN_TOKEN. --idm-url is https:// (http:// only for a loopback "
        "host). Exit codes: 0 done; 2 bad arguments; 4 the admin token is refused; 5 AIC does not accept "
        "the new key; 6 unavailable (retry); 7 anything else: a refusal (a key set without the key the "
        "fleet signs with, a clear-text admin endpoint, an untested key), a revision conflict, a wrong "
        "--function.",
    )
    p.add_argument("--function", required=True, help="the KeyRotationFunction (name or ARN; stack output)")
    p.add_argument(
        "--idm-url", required=True, help="the tenant's base URL, e.g. https://openam-x.id.forgerock.io"
    )
    p.add_argument("--account", help="the service account id (default: the one in the secret)")
    p.add_argument("--admin-token-file", help="a file holding the AIC admin access token")
    p.add_argument("--scope", action="append", help="scopes for the test exchange (default: ALLOWED_SCOPES)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--finish", action="store_true", help="remove every key but the current one from AIC")
    mode.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    p.add_argument("--region")
    p.add_argument("--profile")
    return p


def idm_base(value: str) -> str:
    """The tenant's base URL as urllib3 (the library that sends) reads it, rebuilt from its parts; https,
    or http for a loopback host only (the admin token must not travel in clear text)."""
    try:
        url = urllib3.util.parse_url(value)
    except urllib3.exceptions.LocationParseError:
        url = None
    if (
        url is None
        or url.scheme not in ("https", "http")
        or not url.host
        or url.auth
        or url.query is not None
        or url.fragment is not None
        or url.path not in (None, "", "/")
    ):
        example = url.host if url is not None and url.host else "tenant"
        parser().error(f"--idm-url must be the tenant's base URL, e.g. https://{example}")
    host = url.host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if url.scheme == "http" and not loopback:
        raise RotationRefused(
            f"--idm-url http://{url.host} would send the admin token in clear text: use https:// "
            "(http:// only for a loopback host); nothing was done"
        )
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


class Idm:
    """The service account managed object (``/openidm/managed/svcacct/<id>``); ``jwks`` is a JSON string."""

    def __init__(self, base_url: str, account: str, admin_token: str, http: Any = None) -> None:
        self._url = f"{base_url.rstrip('/')}/openidm/managed/svcacct/{account}"
        self._auth = {"Authorization": f"Bearer {admin_token}", "Accept-API-Version": "resource=1.0"}
        # HTTPS_PROXY / NO_PROXY as botocore reads them, like every other HTTP call of the client (issue 31)
        self._http = http or ProxyAwarePool(retries=False, timeout=urllib3.Timeout(connect=5, read=15))

    def _call(self, method: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            response = self._http.request(method, self._url, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"cannot reach AIC's IDM API ({type(exc).__name__})") from exc
        try:
            body = json.loads(response.data or b"{}")
        except ValueError:
            body = {}
        if response.status in (401, 403):
            raise AccessDenied(
                "AIC refused the admin token for the service account object (it needs a tenant "
                "administrator's access token with fr:idm:*)"
            )
        if response.status == 404:
            raise SetupError(f"no service account at {self._url}")
        if response.status >= 500:
            raise UpstreamUnavailable(f"AIC answered HTTP {response.status}")
        return response.status, body if isinstance(body, dict) else {}

    def read(self) -> tuple[str, list[dict[str, Any]]]:
        """The object's revision and the keys of its ``jwks`` (none when it has no ``jwks``)."""
        _, body = self._call("GET", headers=self._auth)
        try:
            keys = json.loads(body.get("jwks") or '{"keys": []}')["keys"]
            listed = [dict(k) for k in keys]
        except (ValueError, KeyError, TypeError) as exc:
            raise SetupError("the service account's jwks is not a JSON string of a key set") from exc
        return str(body.get("_rev", "")), listed

    def write(self, rev: str, keys: list[dict[str, Any]]) -> bool:
        """Replace ``jwks`` alone at revision ``rev`` (IDM's PATCH: one operation on that field, so no other
        member of the object is rewritten); False on a conflict (someone else changed the object)."""
        operations = [{"operation": "replace", "field": "/jwks", "value": json.dumps({"keys": keys})}]
        status, body = self._call(
            "PATCH",
            headers={**self._auth, "Content-Type": "application/json", "If-Match": f'"{rev}"'},
            body=json.dumps(operations).encode(),
        )
        if status == 412:
            return False
        if status == 400:
            raise UpstreamRejected(f"AIC does not accept the key set: {str(body.get('message', ''))[:120]}")
        return True

    def change(self, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], keep: Numbers) -> int:
        """Read, edit, write at the read revision; retried on a conflict, refused after a few. A key set
        without ``keep`` (the key the fleet signs with) is never written, whatever the edit or a
        concurrent writer did."""
        for _ in range(MAX_CONFLICT_RETRIES):
            rev, keys = self.read()
            wanted = edit(keys)
            if not lists(wanted, keep):
                raise RotationRefused(
                    "refusing to write a key set to AIC without the key the fleet signs with (the secret's "
                    "AWSCURRENT): AIC no longer lists it; nothing was written"
                )
            if wanted == keys:
                return 0
            if self.write(rev, wanted):
                return len(keys) - len(wanted)
        raise RevisionConflict(
            "the service account changed while this ran (revision conflict, 3 times): rerun; nothing was "
            "overwritten"
        )


def _invoke(lambda_client: Any, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    from token_client.errors import BY_NAME, InternalError
    from token_client.transports import local_problem

    try:
        response = lambda_client.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise SetupError(f"no function {function} (deploy with KeyRotation=true; stack output)") from exc
        raise TransportError(f"Lambda invoke failed: {code}") from exc
    except ParamValidationError as exc:  # a mistake in --function, never a reason to retry
        raise SetupError(f"Lambda refuses --function {function!r}: pass the KeyRotationFunctionArn") from exc
    except BotoCoreError as exc:
        raise local_problem(exc) from exc
    body = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        name = body.get("errorType", "") if isinstance(body, dict) else ""
        raise BY_NAME.get(name, InternalError)(
            str(body.get("errorMessage", name)) if isinstance(body, dict) else name
        )
    return body if isinstance(body, dict) else {}


def _step(lambda_client: Any, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A rotation step; the function's InvalidRequest means "not in this state" (the events this sends
    are well formed), such as a promote before a passed test: a refusal, exit 7."""
    try:
        return _invoke(lambda_client, function, payload)
    except InvalidRequest as exc:
        raise RotationRefused(f"the rotation function refused {payload['action']}: {exc.message}") from exc


def _current(lambda_client: Any, function: str) -> tuple[dict[str, Any], Numbers, dict[str, Any]]:
    """The status step: the secret's AWSCURRENT, its public numbers, and the whole status."""
    try:
        status = _invoke(lambda_client, function, {"action": "status"})
    except InvalidRequest as exc:
        raise SetupError(_NOT_ROTATION.format(function=function)) from exc
    current = status.get("AWSCURRENT")
    numbers = key_numbers(current.get("publicJwk")) if isinstance(current, dict) else None
    if not isinstance(current, dict) or numbers is None:
        raise SetupError(
            f"{function} answered no public key for the secret's AWSCURRENT: it is not the "
            "KeyRotationFunction of this version (redeploy the stack) or the secret has no current version"
        )
    return current, numbers, status


def _absent(current: dict[str, Any], account: str) -> RotationRefused:
    return RotationRefused(
        f"AIC does not list the key the fleet signs with (secret version {current.get('versionId')}, key "
        f"{current.get('kid')}) for service account {account}: nothing was written; register that public "
        "key in AIC first"
    )


def _finish(idm: Idm, current: dict[str, Any], numbers: Numbers, status: dict[str, Any]) -> str:
    removed = idm.change(lambda keys: [k for k in keys if key_numbers(k) == numbers], numbers)
    note = ""
    if "AWSPENDING" in status:
        note = f"; the secret still holds a pending key (version {status['AWSPENDING'].get('versionId')})"
    return (
        f"finished: removed {removed} old key(s) from AIC; the service account keeps the key the fleet "
        f"signs with ({current.get('kid')}){note}\n"
    )


def _start(args: argparse.Namespace, lambda_client: Any, idm: Idm, numbers: Numbers, write: Any) -> None:
    created = _step(lambda_client, args.function, {"action": "create"})
    public = created["publicJwk"]
    new = key_numbers(public)
    if new is None:
        raise SetupError("the rotation function answered no usable public key for the pending version")
    write(f"created: pending key {public.get('kid')} (secret version {created['versionId']}, AWSPENDING)\n")
    added = idm.change(lambda keys: keys if lists(keys, new) else [*keys, public], numbers)
    write(f"set: AIC {'already had' if added == 0 else 'now has'} the new public key beside the old one\n")
    payload: dict[str, Any] = {"action": "test"}
    if args.scope:
        payload["scopes"] = args.scope
    tested = _step(lambda_client, args.function, payload)
    write(f"tested: AIC issued a token for the pending key (expires_in {tested.get('expiresIn')})\n")
    finished = _step(lambda_client, args.function, {"action": "finish"})
    write(
        f"promoted: secret version {finished.get('current')} is AWSCURRENT; the fleet signs with it "
        f"within 5 minutes. Then run: {PROG} --function {args.function} --idm-url {args.idm_url} "
        "--finish\n"
    )


def _admin_token(args: argparse.Namespace) -> str:
    token = os.environ.get("AIC_ADMIN_TOKEN", "").strip()
    if args.admin_token_file:
        try:
            with open(args.admin_token_file) as handle:
                token = handle.read().strip()
        except OSError as exc:
            parser().error(f"cannot read --admin-token-file: {exc.strerror}")
    if not token and not args.dry_run:
        parser().error("no admin token: pass --admin-token-file or set AIC_ADMIN_TOKEN")
    return token


def run(argv: list[str], *, lambda_client: Any = None, kms_client: Any = None, out: Any = None) -> int:
    args = parser().parse_args(argv)
    write = (out or sys.stdout).write
    from token_client.cli_common import _fail
    from token_client.transports import new_session

    try:
        base = idm_base(args.idm_url)  # before any AWS call: nothing is sent anywhere on a refusal
        if not _FUNCTION.fullmatch(args.function):
            raise SetupError(
                f"--function {args.function!r} is not a Lambda function name or ARN: pass the stack output "
                "KeyRotationFunctionArn"
            )
        token = _admin_token(args)
        if lambda_client is None:
            from token_client.regions import resolve_region

            session = new_session(args.profile)
            region = resolve_region(args.region, session=session, arn=args.function)
            lambda_client = session.create_client("lambda", region_name=region)
            kms_client = kms_client or session.create_client("kms", region_name=region)
        current, numbers, status = _current(lambda_client, args.function)
        account = args.account or current.get("account")
        if not account:
            raise SetupError("the secret names no service account: pass --account")
        keyless = status.get("mode") == "kms"  # issue 35: the next key is a new KMS key (kms_rotate.py)
        if args.dry_run:
            step = "remove every key but" if args.finish else "create a pending key beside"
            if keyless:
                step = (
                    "remove every key but (then schedule the previous KMS key's deletion) beside"
                    if args.finish
                    else "create a new KMS key, register, test and switch the alias to it, beside"
                )
            write(f"dry run: would {step} the current key {current.get('kid')} of account {account}\n")
            return 0
        idm = Idm(base, account, token)
        if not lists(idm.read()[1], numbers):
            raise _absent(current, account)  # before a pending key is even created
        if keyless:
            from token_client.kms_rotate import KeylessRotation

            def invoke(payload: dict[str, Any]) -> dict[str, Any]:
                return _step(lambda_client, args.function, payload)

            rotation = KeylessRotation(args, kms_client, lambda_client, invoke, write)
            (rotation.finish if args.finish else rotation.start)(idm, status, numbers)
        elif args.finish:
            write(_finish(idm, current, numbers, status))
        else:
            _start(args, lambda_client, idm, numbers, write)
        return 0
    except TokenClientError as exc:
        return _fail(exc)  # one line; a refusal or a revision conflict is exit 7 like anything unnamed
