"""The one error hierarchy of the vendor (CONTRACT section 7).

Each class name is a stable error name: a direct invoker or a Step Functions ``Retry``/``Catch`` matches it
by name, and the HTTP front maps it to a status and an RFC 6749 error code in one place. Messages are
written for the caller: they say what was wrong and never carry key material, assertions or tokens.
"""

from __future__ import annotations

from typing import ClassVar


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
