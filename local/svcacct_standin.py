"""The stand-in's IDM service account object, ``/openidm/managed/svcacct/<id>``, as AIC's REST API serves it.

GET reads it (``jwks`` is a JSON string, as AIC stores it; ``_rev`` and an ``ETag``). A write names the
revision it read in ``If-Match`` and a stale one is 412, never a lost update. PATCH takes IDM's array of
operations (``[{"operation": "replace", "field": "/jwks", "value": …}]``, applied in order; the stand-in
knows ``add`` and ``replace`` on top-level members); PUT replaces the whole object, so a member the body
omits is gone (IDM's update semantics). A ``jwks`` that is not a non-empty set of public RSA keys is 400.
Every accepted write is recorded in ``writes`` so tests can say what a tool changed.
"""

from __future__ import annotations

import json
import secrets
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.aic_grant import Account

Answer = tuple[int, dict[str, Any], dict[str, str]]
_UNAUTHORIZED: Answer = (401, {"code": 401, "reason": "Unauthorized", "message": "Access Denied"}, {})
_NOT_FOUND: Answer = (404, {"code": 404, "reason": "Not Found", "message": "Object not found"}, {})
_STALE: Answer = (412, {"code": 412, "reason": "Precondition Failed", "message": "revision mismatch"}, {})


def _bad(message: str) -> Answer:
    return 400, {"code": 400, "reason": "Bad Request", "message": message}, {}


def _public_keys(jwks: Any) -> list[dict[str, Any]]:
    """The keys of a ``jwks`` value; ValueError unless it is a JSON string of public RSA keys (some)."""
    if not isinstance(jwks, str):
        raise ValueError("jwks")
    keys = json.loads(jwks)["keys"]
    if not keys or not all(
        isinstance(k, dict) and k.get("kty") == "RSA" and "n" in k and "e" in k and "d" not in k for k in keys
    ):
        raise ValueError("jwks")
    return [dict(k) for k in keys]


class ServiceAccountObjects:
    """The managed objects over the stand-in's accounts (``accounts`` guarded by ``lock``)."""

    def __init__(self, accounts: dict[str, Account], lock: threading.Lock, admin_token: str) -> None:
        self._accounts = accounts
        self._lock = lock
        self._admin_token = admin_token
        self.revisions: dict[str, int] = {}
        self.members: dict[str, dict[str, Any]] = {}  # members other than jwks, per account
        self.writes: list[tuple[str, str, Any]] = []  # (method, account id, body) of each accepted write

    def _document(self, account: Account) -> dict[str, Any]:
        rev = self.revisions.setdefault(account.account_id, 1)
        members = self.members.setdefault(
            account.account_id,
            {
                "name": f"service account {account.account_id[:8]}",
                "accountStatus": "active",
                "scopes": sorted(account.scopes),
            },
        )
        jwks = json.dumps({"keys": account.public_jwks})
        return {"_id": account.account_id, "_rev": str(rev), **members, "jwks": jwks}

    def _admin(self, authorization: str) -> bool:
        return secrets.compare_digest(authorization, f"Bearer {self._admin_token}")

    def get(self, account_id: str, authorization: str) -> Answer:
        if not self._admin(authorization):
            return _UNAUTHORIZED
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return _NOT_FOUND
            document = self._document(account)
        return 200, document, {"ETag": f'"{document["_rev"]}"'}

    def write(
        self, method: str, account_id: str, authorization: str, if_match: str | None, body: bytes
    ) -> Answer:
        """PUT or PATCH at the revision ``if_match`` names (``*``: any)."""
        if not self._admin(authorization):
            return _UNAUTHORIZED
        try:
            parsed = json.loads(body)
        except ValueError:
            return _bad("the body is not JSON")
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return _NOT_FOUND
            rev = str(self.revisions.setdefault(account_id, 1))
            if if_match is None or if_match.strip('"') not in (rev, "*"):
                return _STALE
            current = self._document(account)
            updated = self._patched(current, parsed) if method == "PATCH" else self._replaced(parsed)
            if isinstance(updated, tuple):
                return updated
            try:
                keys = _public_keys(updated.get("jwks"))
            except (ValueError, KeyError, TypeError):
                return _bad("jwks must be a JSON string of public RSA keys")
            account.public_jwks = keys
            self.members[account_id] = {k: v for k, v in updated.items() if k != "jwks"}
            self.revisions[account_id] = int(rev) + 1
            self.writes.append((method, account_id, parsed))
            document = self._document(account)
        return 200, document, {"ETag": f'"{document["_rev"]}"'}

    @staticmethod
    def _replaced(parsed: Any) -> dict[str, Any] | Answer:
        if not isinstance(parsed, dict):
            return _bad("a PUT body is the whole object")
        return {k: v for k, v in parsed.items() if not k.startswith("_")}

    @staticmethod
    def _patched(current: dict[str, Any], parsed: Any) -> dict[str, Any] | Answer:
        if not isinstance(parsed, list) or not parsed:
            return _bad("a PATCH body is a JSON array of patch operations")
        updated = {k: v for k, v in current.items() if not k.startswith("_")}
        for operation in parsed:
            if not isinstance(operation, dict) or operation.get("operation") not in ("add", "replace"):
                return _bad("the stand-in knows the add and replace operations")
            field = operation.get("field")
            if not isinstance(field, str) or field.count("/") > 1 or field.strip("/").startswith("_"):
                return _bad("the stand-in patches top-level members only")
            if "value" not in operation:
                return _bad("add and replace need a value")
            updated[field.strip("/")] = operation["value"]
        return updated
