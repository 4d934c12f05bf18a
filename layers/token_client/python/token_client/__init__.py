"""Client for the AIC token vendor: ``TokenClient.for_function(name)`` or ``TokenClient.for_url(url)``."""

from token_client.client import Token, TokenClient
from token_client.errors import (
    AccessDenied,
    ConfigurationError,
    InternalError,
    InvalidRequest,
    InvalidScope,
    SetupError,
    TokenClientError,
    TransportError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from token_client.transports import HttpTransport, LambdaTransport

__version__ = "0.2.0"

__all__ = [
    "AccessDenied",
    "ConfigurationError",
    "HttpTransport",
    "InternalError",
    "InvalidRequest",
    "InvalidScope",
    "LambdaTransport",
    "SetupError",
    "Token",
    "TokenClient",
    "TokenClientError",
    "TransportError",
    "UpstreamRejected",
    "UpstreamUnavailable",
]
