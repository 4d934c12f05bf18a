"""The one error hierarchy of the vendor (CONTRACT section 7): every exception the package defines is here.

Each ``TokenVendorError`` class name is a stable error name: a direct invoker or a Step Functions
``Retry``/``Catch`` matches it by name, and the HTTP front maps it to a status and an RFC 6749 error code in
one place. Messages are written for the caller: they say what was wrong and never carry key material,
assertions or tokens. An ``InternalFault`` never reaches a caller: the collaborator that calls the raiser
handles it (a degraded path, a retry, or one of the errors a caller reads)::

    Exception
    ├── TokenVendorError            a caller reads its name, code and status
    │   ├── InvalidRequest          400 invalid_request
    │   ├── InvalidScope            400 invalid_scope
    │   ├── AccessDenied            403 access_denied
    │   ├── NotFound                404 not_found (HTTP only)
    │   ├── MethodNotAllowed        405 method_not_allowed (HTTP only)
    │   ├── UpstreamRejected        502 upstream_rejected
    │   ├── UpstreamUnavailable     503 temporarily_unavailable (retryable)
    │   ├── ConfigurationError      500 server_error
    │   └── InternalError           500 server_error
    └── InternalFault               never reaches a caller
        ├── CacheUnavailable        the table (or its KMS key) failed: mint without the shared cache;
        │                           ``misconfigured`` when it will not pass: logged once (CacheHealth)
        ├── EnvelopeError           a sealed token does not open: a miss
        ├── NoAnswer                no complete HTTP answer (bounded_http): retried or UpstreamUnavailable
        └── RetryableAttempt        a failed exchange attempt worth another (token_endpoint)
    botocore.exceptions.BotoCoreError
    └── NoTimeLeft                  no time left for another AWS call (bounded_client); a BotoCoreError, so
                                    every adapter's botocore handling covers it
"""

from __future__ import annotations

from typing import ClassVar

from botocore.exceptions import BotoCoreError


class TokenVendorError(Exception):
    """Root of every error the vendor raises on purpose."""

    code: ClassVar[str] = "server_error"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def name(self) -> str:
        return type(self).__name__


class InvalidRequest(TokenVendorError):
    """Malformed event, body or query; unknown member; bad ``minValiditySeconds``."""

    code = "invalid_request"
    status = 400


class InvalidScope(TokenVendorError):
    """Empty or malformed scope, or one outside ``ALLOWED_SCOPES``."""

    code = "invalid_scope"
    status = 400


class AccessDenied(TokenVendorError):
    """The HTTP caller's policy does not grant every requested scope (CONTRACT section 6)."""

    code = "access_denied"
    status = 403


class NotFound(TokenVendorError):
    """HTTP only: a path the API does not serve."""

    code = "not_found"
    status = 404


class MethodNotAllowed(TokenVendorError):
    """HTTP only: a method the path does not serve."""

    code = "method_not_allowed"
    status = 405


class UpstreamRejected(TokenVendorError):
    """The token endpoint answered an OAuth 4xx; ``upstream_code`` is its ``error``."""

    code = "upstream_rejected"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        upstream_code: str,
        rejected_scopes: tuple[str, ...] = (),
        version: str | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream_code = upstream_code
        self.rejected_scopes = rejected_scopes
        self.version = version  # the secret version whose key AIC refused (invalid_client/invalid_grant)


class UpstreamUnavailable(TokenVendorError):
    """Token endpoint (or a dependency) unreachable or failing after retries, with nothing cached."""

    code = "temporarily_unavailable"
    status = 503
    retryable = True

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class ConfigurationError(TokenVendorError):
    """Missing or malformed settings or secret: an operator must act."""

    code = "server_error"
    status = 500


class InternalError(TokenVendorError):
    """Anything unexpected, answered without internals (the trace goes to the log only)."""

    code = "server_error"
    status = 500


class InternalFault(Exception):
    """Root of the exceptions that never reach a caller: the collaborator that calls the raiser handles it."""


class CacheUnavailable(InternalFault):
    """DynamoDB (or KMS for the cache) failed: the caller degrades to minting without the shared cache.
    ``misconfigured``: it refused for a reason that will not pass (no table, access denied, key disabled)."""

    def __init__(self, message: str, *, misconfigured: bool = False) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured


class EnvelopeError(InternalFault):
    """The ciphertext cannot be opened: wrong associated data, tampering, or KMS refused."""


class NoAnswer(InternalFault):
    """No complete answer. ``sent``: the request may have been processed (a retry may cost a token);
    ``unresolved``: the host name does not resolve; ``certificate``: the server's certificate was not
    trusted (nothing was sent; retrying cannot help)."""

    def __init__(
        self, reason: str, *, sent: bool, unresolved: bool = False, certificate: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.unresolved = unresolved
        self.certificate = certificate


class RetryableAttempt(InternalFault):
    """A failed attempt worth another. ``sent``: the request may have reached AIC, which may have minted."""

    def __init__(self, reason: str, retry_after: float | None = None, *, sent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.sent = sent


class NoTimeLeft(BotoCoreError):
    """Too little of the invocation is left for another AWS call; none was sent."""

    fmt = "no time left in this invocation for {operation}"
