"""A stand-in for AIC's token endpoint and one IDM endpoint, on loopback.

Built on Authlib's RFC 7523 ``JWTBearerGrant``, plus what AIC enforces that Authlib does not:
``client_id=service-account``, ``iss == sub`` = a registered account, the exact ``aud``, ``exp`` at most 15
minutes ahead, a ``jti`` that is required and never reused, requested scopes within the account's (else
AIC's own ``Unsupported scope for service account: a,b``), and ``expires_in`` 899.

Fault switches let tests make it fail the way a real endpoint does: 5xx, 429 with ``Retry-After``, slow
answers, garbage or truncated bodies, dropped connections, malformed token responses.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError, InvalidScopeError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7523 import JWTBearerGrant
from joserfc.jwk import KeySet, RSAKey

from local.quiet_server import QuietThreadingHTTPServer
from local.svcacct_standin import ServiceAccountObjects

TOKEN_PATH = "/am/oauth2/access_token"
USERS_PATH = "/openidm/managed/alpha_user"
SVCACCT_PATH = "/openidm/managed/svcacct/"  # + the account id: AIC's service account managed object
SERVICE_ACCOUNT_CLIENT = "service-account"
TOKEN_LIFETIME = 899  # AIC service-account tokens: fixed, not configurable
MAX_ASSERTION_LIFETIME = 900
IDM_SCOPE = "fr:idm:*"

SAMPLE_USERS = [
    {"_id": "0b2c6b7a-1f0e-4a8e-9d1e-5f3c2a1b0c01", "userName": "bjensen", "givenName": "Babs"},
    {"_id": "0b2c6b7a-1f0e-4a8e-9d1e-5f3c2a1b0c02", "userName": "scarter", "givenName": "Sam"},
    {"_id": "0b2c6b7a-1f0e-4a8e-9d1e-5f3c2a1b0c03", "userName": "jdoe", "givenName": "Jo"},
]


@dataclass
class Account:
    account_id: str
    scopes: frozenset[str]
    public_jwks: list[dict[str, Any]]

    # Authlib's client interface
    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == JWTBearerGrant.GRANT_TYPE


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, consumed by one token request.

    kind: ``status`` (answer ``status`` with ``body`` and optional ``retry_after``), ``slow`` (sleep
    ``delay`` then answer normally), ``slow_status`` (sleep ``delay``, then answer ``status``), ``drop``
    (close the connection without answering), ``truncated`` (promise more bytes than are sent),
    ``token_body`` (answer 200 with ``body`` verbatim), ``drip`` (answer 200 but send the body one byte
    every ``delay`` seconds: every read succeeds, none finishes).
    """

    kind: str
    status: int = 500
    body: bytes = b'{"error":"server_error","error_description":"stand-in fault"}'
    retry_after: str | None = None
    delay: float = 0.0


@dataclass
class Issued:
    access_token: str
    account_id: str
    scopes: frozenset[str]
    expires_at: float
    jti: str


@dataclass
class StandInState:
    audience: str = ""
    accounts: dict[str, Account] = field(default_factory=dict)
    seen_jti: set[str] = field(default_factory=set)
    issued: dict[str, Issued] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    sticky_fault: Fault | None = None
    token_requests: int = 0
    exchanges: int = 0
    lifetime: int = TOKEN_LIFETIME  # expires_in of the tokens it issues
    revoked: set[str] = field(default_factory=set)
    assertions: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Request(OAuth2Request):
    def __init__(self, form: dict[str, str]) -> None:
        # The URI only feeds Authlib's transport check; the stand-in itself is plain HTTP on loopback.
        super().__init__("POST", "https://stand-in.invalid" + TOKEN_PATH, headers={})
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form


class AICJWTBearerGrant(JWTBearerGrant):
    LEEWAY = 5
    state: StandInState

    def resolve_issuer_client(self, issuer: str) -> Account | None:
        return self.state.accounts.get(issuer)

    def resolve_client_public_key(self, client: Account) -> KeySet:
        """Every key in the account's jwks is honoured (a rotation adds one before it removes the other):
        the one the assertion's ``kid`` names, else (a console download has no kid) the key without one."""
        try:
            segment = str(self.request.form.get("assertion", "")).split(".", 1)[0]
            header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
            kid = header.get("kid") if isinstance(header, dict) else None
        except ValueError:
            kid = None
        jwks = client.public_jwks
        chosen = [j for j in jwks if j.get("kid") == kid] if kid else [j for j in jwks if not j.get("kid")]
        return KeySet([RSAKey.import_key(jwk) for jwk in (chosen or ([] if kid else jwks[:1]))])

    def get_audiences(self) -> list[str]:
        return [self.state.audience]

    def authenticate_user(self, subject: str) -> Account | None:
        return self.state.accounts.get(subject)

    def has_granted_permission(self, client: Account, user: Account) -> bool:
        return client is user

    def verify_claims(self, claims: Any) -> None:
        super().verify_claims(claims)
        if claims.get("sub") != claims.get("iss"):
            raise InvalidGrantError(description="sub must equal iss for a service account")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp > time.time() + MAX_ASSERTION_LIFETIME + self.LEEWAY:
            raise InvalidGrantError(description="exp must be at most 15 minutes ahead")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidGrantError(description="jti is required")
        with self.state.lock:
            if jti in self.state.seen_jti:
                raise InvalidGrantError(description="jti has already been used")
            self.state.seen_jti.add(jti)
            self.request.assertion_jti = jti  # type: ignore[attr-defined]

    def validate_requested_scope(self) -> None:
        requested = (self.request.payload.scope or "").split()
        account: Account = self.request.client
        missing = [s for s in requested if s not in account.scopes]
        if missing:
            raise InvalidScopeError(description="Unsupported scope for service account: " + ",".join(missing))


class StandInServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, state: StandInState) -> None:
        super().__init__()
        self.state = state
        grant = type("BoundGrant", (AICJWTBearerGrant,), {"state": state})
        self.register_grant(grant)
        self.register_token_generator("default", self._generate)

    def _generate(
        self, grant_type: str, client: Account, user: Any = None, scope: str | None = None, **_: Any
    ) -> dict[str, Any]:
        # AIC's tokens are encrypted JWTs; an opaque random string of similar size serves here.
        return {
            "access_token": "eyJ0eXAi" + secrets.token_urlsafe(96),
            "token_type": "Bearer",
            "expires_in": self.state.lifetime,
            "scope": scope or "",
        }

    def query_client(self, client_id: str) -> None:
        return None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        with self.state.lock:
            self.state.exchanges += 1
            self.state.issued[token["access_token"]] = Issued(
                token["access_token"],
                request.client.account_id,
                frozenset((token.get("scope") or "").split()),
                time.time() + self.state.lifetime,
                getattr(request, "assertion_jti", ""),
            )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # type: ignore[no-any-return]

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def token_response(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != SERVICE_ACCOUNT_CLIENT:
            status, body, _ = self.handle_error_response(
                None, InvalidClientError(description="client_id must be service-account")
            )
            return 400, dict(body)
        status, body, _ = self.create_token_response(_Request(form))
        return status, dict(body)


class AICStandIn:
    """Start with ``start()``; the token endpoint is ``token_url``, the IDM base is ``base_url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = StandInState()
        self._oauth = StandInServer(self.state)
        self._httpd = QuietThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.base_url = f"http://{host}:{self._httpd.server_address[1]}"
        self.token_url = self.base_url + TOKEN_PATH
        self.state.audience = self.token_url
        # A tenant administrator's access token for the IDM REST API (the svcacct object); tests read it.
        self.admin_token = secrets.token_urlsafe(32)
        # The svcacct managed object (IDM REST, as frodo-lib's ServiceAccountOps uses it).
        self.svcacct = ServiceAccountObjects(self.state.accounts, self.state.lock, self.admin_token)

    # -- control ----------------------------------------------------------------------------------
    def start(self) -> AICStandIn:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="aic-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def register_account(
        self, account_id: str, public_jwks: Iterable[dict[str, Any]], scopes: Iterable[str]
    ) -> None:
        with self.state.lock:
            self.state.accounts[account_id] = Account(account_id, frozenset(scopes), list(public_jwks))

    def set_keys(self, account_id: str, public_jwks: Iterable[dict[str, Any]]) -> None:
        with self.state.lock:
            self.state.accounts[account_id].public_jwks = list(public_jwks)

    def push_faults(self, *faults: Fault) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def set_sticky_fault(self, fault: Fault | None) -> None:
        with self.state.lock:
            self.state.sticky_fault = fault

    def set_token_lifetime(self, seconds: int) -> None:
        """Issue tokens that live ``seconds`` (AIC's default is 899)."""
        with self.state.lock:
            self.state.lifetime = seconds

    def revoke(self, access_token: str) -> None:
        """Stop honouring a token it issued (an admin revoked it): IDM then answers 401."""
        with self.state.lock:
            self.state.revoked.add(access_token)

    def reset_counters(self) -> None:
        with self.state.lock:
            self.state.lifetime = TOKEN_LIFETIME
            self.state.token_requests = 0
            self.state.exchanges = 0
            self.state.faults.clear()
            self.state.sticky_fault = None

    @property
    def exchanges(self) -> int:
        return self.state.exchanges

    @property
    def token_requests(self) -> int:
        return self.state.token_requests

    def issued_tokens(self) -> list[str]:
        with self.state.lock:
            return list(self.state.issued)

    def assertions_seen(self) -> list[str]:
        with self.state.lock:
            return list(self.state.assertions)

    # -- HTTP -------------------------------------------------------------------------------------
    def _next_fault(self) -> Fault | None:
        with self.state.lock:
            self.state.token_requests += 1
            if self.state.faults:
                return self.state.faults.popleft()
            return self.state.sticky_fault

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stalls

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
                return None

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                if urlsplit(self.path).path != TOKEN_PATH:
                    self._send(404, b'{"code":404,"reason":"Not Found"}')
                    return
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                if "assertion" in form:
                    with standin.state.lock:
                        standin.state.assertions.append(form["assertion"])
                fault = standin._next_fault()
                if fault is not None and self._apply(fault):
                    return
                status, body = standin._oauth.token_response(form)
                self._send(status, json.dumps(body).encode())

            def _apply(self, fault: Fault) -> bool:
                """Act out a fault; True when the request is fully answered (or dropped)."""
                if fault.kind == "slow":
                    time.sleep(fault.delay)
                    return False
                if fault.kind == "slow_status":  # a struggling AIC: slow, then a failure
                    time.sleep(fault.delay)
                    self._send(fault.status, fault.body)
                    return True
                if fault.kind == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return True
                if fault.kind == "drip":
                    body = b'{"access_token":"eyJ0eX","token_type":"Bearer","expires_in":899}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.flush()
                    for byte in body:  # bounded: at most len(body) * delay seconds
                        time.sleep(fault.delay)
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:
                            break
                    self.close_connection = True
                    return True
                if fault.kind == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "400")
                    self.end_headers()
                    self.wfile.write(b'{"access_token":"eyJ0eX')
                    self.close_connection = True
                    return True
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._send(200 if fault.kind == "token_body" else fault.status, fault.body, headers)
                return True

            def _write_svcacct(self) -> None:
                path = urlsplit(self.path).path
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not path.startswith(SVCACCT_PATH):
                    self._send(404, b'{"code":404,"reason":"Not Found"}')
                    return
                status, answer, headers = standin.svcacct.write(
                    self.command,
                    path[len(SVCACCT_PATH) :],
                    self.headers.get("Authorization", ""),
                    self.headers.get("If-Match"),
                    body,
                )
                self._send(status, json.dumps(answer).encode(), headers)

            do_PUT = do_PATCH = _write_svcacct

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path.startswith(SVCACCT_PATH):
                    status, answer, headers = standin.svcacct.get(
                        path[len(SVCACCT_PATH) :], self.headers.get("Authorization", "")
                    )
                    self._send(status, json.dumps(answer).encode(), headers)
                    return
                if urlsplit(self.path).path != USERS_PATH:
                    self._send(404, b'{"code":404,"reason":"Not Found"}')
                    return
                auth = self.headers.get("Authorization", "")
                token = auth[7:] if auth.startswith("Bearer ") else ""
                with standin.state.lock:
                    issued = standin.state.issued.get(token)
                    revoked = token in standin.state.revoked
                if issued is None or revoked or issued.expires_at < time.time():
                    self._send(401, b'{"code":401,"reason":"Unauthorized","message":"Access Denied"}')
                    return
                if IDM_SCOPE not in issued.scopes:
                    self._send(403, b'{"code":403,"reason":"Forbidden","message":"Insufficient scope"}')
                    return
                body = {"result": SAMPLE_USERS, "resultCount": len(SAMPLE_USERS), "totalPagedResults": -1}
                self._send(200, json.dumps(body).encode())

        return Handler
