"""The stand-in's token endpoint: Authlib's RFC 7523 ``JWTBearerGrant`` with the rules AIC adds.

``client_id=service-account``, ``iss == sub`` = a registered account, the exact ``aud``, ``exp`` at most 15
minutes ahead, a ``jti`` that is required and never reused, requested scopes within the account's (else
AIC's own ``Unsupported scope for service account: a,b``), and ``expires_in`` 899. ``StandInState`` is what
the whole stand-in shares (accounts, issued tokens, faults, counters), under one lock.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError, InvalidScopeError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7523 import JWTBearerGrant
from joserfc.jwk import KeySet, RSAKey

from local.aic_faults import Fault

TOKEN_PATH = "/am/oauth2/access_token"
SERVICE_ACCOUNT_CLIENT = "service-account"
TOKEN_LIFETIME = 899  # AIC service-account tokens: fixed, not configurable
MAX_ASSERTION_LIFETIME = 900


@dataclass
class Account:
    account_id: str
    scopes: frozenset[str]
    public_jwks: list[dict[str, Any]]

    # Authlib's client interface
    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == JWTBearerGrant.GRANT_TYPE


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
    peers: list[int] = field(default_factory=list)  # each token request's client port (one per connection)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> Fault | None:
        """Count a token request and take the fault it meets, if any."""
        with self.lock:
            self.token_requests += 1
            if self.faults:
                return self.faults.popleft()
            return self.sticky_fault


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
