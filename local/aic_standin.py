"""A stand-in for AIC's token endpoint and one IDM endpoint, on loopback: the control surface tests drive.

The parts: the grant (``local/aic_grant.py``, Authlib's RFC 7523 ``JWTBearerGrant`` plus what AIC enforces
that Authlib does not), IDM (``local/aic_idm.py``), the svcacct object (``local/svcacct_standin.py``), the
fault switches (``local/aic_faults.py``: 5xx, 429 with ``Retry-After``, slow answers, garbage or truncated
bodies, dropped connections, malformed token responses) and the HTTP server routing to them
(``local/aic_server.py``).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from typing import Any

from local.aic_faults import Fault
from local.aic_grant import TOKEN_LIFETIME, TOKEN_PATH, Account, StandInServer, StandInState
from local.aic_server import StandInHTTPServer
from local.svcacct_standin import ServiceAccountObjects

__all__ = ["AICStandIn", "Account", "Fault"]


class AICStandIn:
    """Start with ``start()``; the token endpoint is ``token_url``, the IDM base is ``base_url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = StandInState()
        # A tenant administrator's access token for the IDM REST API (the svcacct object); tests read it.
        self.admin_token = secrets.token_urlsafe(32)
        # The svcacct managed object (IDM REST, as frodo-lib's ServiceAccountOps uses it).
        self.svcacct = ServiceAccountObjects(self.state.accounts, self.state.lock, self.admin_token)
        self._httpd = StandInHTTPServer((host, port), self.state, StandInServer(self.state), self.svcacct)
        self._thread: threading.Thread | None = None
        self.base_url = f"http://{host}:{self._httpd.server_address[1]}"
        self.token_url = self.base_url + TOKEN_PATH
        self.state.audience = self.token_url

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

    def token_request_ports(self) -> list[int]:
        """The client's port of every token request so far: requests on one connection share one."""
        with self.state.lock:
            return list(self.state.peers)

    def issued_jtis(self) -> dict[str, str]:
        """The ``jti`` of the assertion behind each issued token, by token."""
        with self.state.lock:
            return {token: issued.jti for token, issued in self.state.issued.items()}

    def assertions_seen(self) -> list[str]:
        with self.state.lock:
            return list(self.state.assertions)
