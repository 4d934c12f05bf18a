"""Exceptions that mirror the token vendor's stable error names (its CONTRACT section 7)."""

from __future__ import annotations

from typing import ClassVar


class TokenClientError(Exception):
    """Root of everything the client raises."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class InvalidRequest(TokenClientError):
    pass


class InvalidScope(TokenClientError):
    pass


class AccessDenied(TokenClientError):
    """The caller's IAM identity may not have the scope set (or the request was not signed right)."""


class UpstreamRejected(TokenClientError):
    pass


class UpstreamUnavailable(TokenClientError):
    retryable = True

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ConfigurationError(TokenClientError):
    pass


class InternalError(TokenClientError):
    pass


class TransportError(TokenClientError):
    """The service could not be reached or answered something that is not the vendor's."""

    retryable = True


class SetupError(TokenClientError):
    """A mistake that will not fix itself: no credentials, an unknown profile or region, an unknown
    function, table or path, a host that does not resolve. The message says what to check."""


BY_NAME: dict[str, type[TokenClientError]] = {
    cls.__name__: cls
    for cls in (
        InvalidRequest,
        InvalidScope,
        AccessDenied,
        UpstreamRejected,
        UpstreamUnavailable,
        ConfigurationError,
        InternalError,
    )
}

# RFC 6749-style codes of the HTTP front -> the same classes.
BY_OAUTH_CODE: dict[str, type[TokenClientError]] = {
    "invalid_request": InvalidRequest,
    "invalid_scope": InvalidScope,
    "access_denied": AccessDenied,
    "upstream_rejected": UpstreamRejected,
    "temporarily_unavailable": UpstreamUnavailable,
    "server_error": InternalError,
    "not_found": SetupError,  # a path the API does not serve: the URL is wrong
    "method_not_allowed": InvalidRequest,
}
