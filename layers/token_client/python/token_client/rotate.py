"""``aic-token rotate``: rotate the service account's key make-before-break, the private key born in AWS.

    aic-token rotate --function ROTATION_FUNCTION --idm-url https://TENANT [--account ID] [--dry-run]
    aic-token rotate --function ROTATION_FUNCTION --idm-url https://TENANT --finish

Start: the rotation function creates a key pair as the secret's AWSPENDING version and answers its public
JWK; this adds that key to the service account's ``jwks`` in AIC (read, change, write back at its
revision: a concurrent change is retried, never overwritten), has the function make one exchange with the
pending key, and promotes it to AWSCURRENT. The old key keeps working in AIC meanwhile. ``--finish`` (after
the fleet signs with the new key: within 5 minutes) removes every other key from ``jwks``. Every step can
be rerun. The AIC admin access token is read from ``--admin-token-file`` or ``AIC_ADMIN_TOKEN``, never
from an argument. Nothing here sees a private key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn
from urllib.parse import urlsplit

import urllib3

from token_client.errors import (
    AccessDenied,
    SetupError,
    TokenClientError,
    TransportError,
    UpstreamRejected,
    UpstreamUnavailable,
)

PROG = "aic-token rotate"
MAX_CONFLICT_RETRIES = 3


class RevisionConflict(TokenClientError):
    pass


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
        "from --admin-token-file or AIC_ADMIN_TOKEN. Exit codes: 0 done; 2 bad arguments; 4 the admin token "
        "is refused; 5 AIC does not accept the new key; 6 unavailable (retry); 7 anything else, a revision "
        "conflict or an unknown secret format included.",
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


class Idm:
    """The service account managed object (``/openidm/managed/svcacct/<id>``); ``jwks`` is a JSON string."""

    def __init__(self, base_url: str, account: str, admin_token: str, http: Any = None) -> None:
        self._url = f"{base_url.rstrip('/')}/openidm/managed/svcacct/{account}"
        self._auth = {"Authorization": f"Bearer {admin_token}", "Accept-API-Version": "resource=1.0"}
        self._http = http or urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=15))

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

    def read(self) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        _, body = self._call("GET", headers=self._auth)
        try:
            keys = json.loads(body.get("jwks") or '{"keys": []}')["keys"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SetupError("the service account's jwks is not a JSON string of a key set") from exc
        return str(body.get("_rev", "")), [dict(k) for k in keys], body

    def write(self, rev: str, document: dict[str, Any], keys: list[dict[str, Any]]) -> bool:
        """Write ``keys`` at revision ``rev``; False on a conflict (someone else changed the object)."""
        updated = {k: v for k, v in document.items() if not k.startswith("_")}
        updated["jwks"] = json.dumps({"keys": keys})
        status, body = self._call(
            "PUT",
            headers={**self._auth, "Content-Type": "application/json", "If-Match": f'"{rev}"'},
            body=json.dumps(updated).encode(),
        )
        if status == 412:
            return False
        if status == 400:
            raise UpstreamRejected(f"AIC does not accept the key set: {str(body.get('message', ''))[:120]}")
        return True

    def change(self, edit: Any) -> int:
        """Read, edit, write at the read revision; retried on a conflict, refused after a few."""
        for _ in range(MAX_CONFLICT_RETRIES):
            rev, keys, document = self.read()
            wanted = edit(keys)
            if wanted == keys:
                return 0
            if self.write(rev, document, wanted):
                return len(keys) - len(wanted)
        raise RevisionConflict(
            "the service account changed while this ran (revision conflict, 3 times): rerun; nothing was "
            "overwritten"
        )


def _invoke(lambda_client: Any, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    from token_client.errors import BY_NAME, InternalError
    from token_client.transports import local_problem

    try:
        response = lambda_client.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise SetupError(f"no function {function} (deploy with KeyRotation=true; stack output)") from exc
        raise TransportError(f"Lambda invoke failed: {code}") from exc
    except BotoCoreError as exc:
        raise local_problem(exc) from exc
    body = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        name = body.get("errorType", "") if isinstance(body, dict) else ""
        raise BY_NAME.get(name, InternalError)(
            str(body.get("errorMessage", name)) if isinstance(body, dict) else name
        )
    return body if isinstance(body, dict) else {}


def run(argv: list[str], *, lambda_client: Any = None, out: Any = None) -> int:
    args = parser().parse_args(argv)
    write = (out or sys.stdout).write
    parts = urlsplit(args.idm_url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/"):
        parser().error(f"--idm-url must be the tenant's base URL, e.g. https://{parts.hostname or 'tenant'}")
    token = os.environ.get("AIC_ADMIN_TOKEN", "").strip()
    if args.admin_token_file:
        try:
            with open(args.admin_token_file) as handle:
                token = handle.read().strip()
        except OSError as exc:
            parser().error(f"cannot read --admin-token-file: {exc.strerror}")
    if not token and not args.dry_run:
        parser().error("no admin token: pass --admin-token-file or set AIC_ADMIN_TOKEN")
    from token_client.__main__ import _fail
    from token_client.transports import new_session

    try:
        if lambda_client is None:
            lambda_client = new_session(args.profile).create_client("lambda", region_name=args.region)
        status = _invoke(lambda_client, args.function, {"action": "status"})
        current = status.get("AWSCURRENT") or {}
        account = args.account or current.get("account")
        if not account:
            raise SetupError("the secret names no service account: pass --account")
        idm = Idm(args.idm_url, account, token)
        if args.dry_run:
            step = "remove every key but" if args.finish else "create a pending key beside"
            write(f"dry run: would {step} the current key {current.get('kid')} of account {account}\n")
            return 0
        if args.finish:
            keep = current["kid"]
            removed = idm.change(lambda keys: [k for k in keys if k.get("kid") == keep])
            write(f"finished: removed {removed} old key(s) from AIC; the service account keeps {keep}\n")
            return 0
        created = _invoke(lambda_client, args.function, {"action": "create"})
        public = created["publicJwk"]
        write(f"created: pending key {public['kid']} (secret version {created['versionId']}, AWSPENDING)\n")
        added = idm.change(
            lambda keys: keys if any(k.get("kid") == public["kid"] for k in keys) else [*keys, public]
        )
        write(
            f"set: AIC {'already had' if added == 0 else 'now has'} the new public key beside the old one\n"
        )
        payload: dict[str, Any] = {"action": "test"}
        if args.scope:
            payload["scopes"] = args.scope
        tested = _invoke(lambda_client, args.function, payload)
        write(f"tested: AIC issued a token for the pending key (expires_in {tested.get('expiresIn')})\n")
        finished = _invoke(lambda_client, args.function, {"action": "finish"})
        write(
            f"promoted: secret version {finished.get('current')} is AWSCURRENT; the fleet signs with it "
            f"within 5 minutes. Then run: {PROG} --function {args.function} --idm-url {args.idm_url} "
            "--finish\n"
        )
        return 0
    except TokenClientError as exc:
        return _fail(exc)  # one line; a revision conflict is exit 7 like anything unnamed
