"""What every ``aic-token`` command shares: the program's name, its exit codes, the one-line argument
parser, the options that say where a token comes from, and the one-line failure. ``__main__``, ``exec_tool``
and ``rotate`` import it; it imports none of them (no circle).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn
from urllib.parse import urlsplit

from token_client.client import DEFAULT_MIN_VALIDITY, TokenClient
from token_client.errors import (
    AccessDenied,
    InvalidRequest,
    InvalidScope,
    SetupError,
    TokenClientError,
    TransportError,
    UpstreamRejected,
    UpstreamUnavailable,
)

PROG = "aic-token"

EXIT_CODES: dict[type[TokenClientError], int] = {
    SetupError: 7,
    InvalidRequest: 3,
    InvalidScope: 3,
    AccessDenied: 4,
    UpstreamRejected: 5,
    UpstreamUnavailable: 6,
    TransportError: 6,
}
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?")
_FUNCTION_ARN = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?"
)
_FINGERPRINT = re.compile(r"[0-9a-f]{12}")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_MIN_VALIDITY = 840  # the vendor's bound: AIC's tokens live 900 s by default


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit 2 (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see {PROG} --help)\n")
        raise SystemExit(2)


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a URL: {value!r} (expected https://…/v1/token)") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not a URL: {value!r} (expected https://…/v1/token)")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"the URL must not carry a query or fragment: {value!r} (give scopes with --scope)"
        )
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise argparse.ArgumentTypeError("http:// is only for a loopback host; use https://")
    return value


def _function(value: str) -> str:
    if not (_FUNCTION_ARN.fullmatch(value) or _FUNCTION_NAME.fullmatch(value)):
        raise argparse.ArgumentTypeError(f"not a Lambda function name or ARN: {value!r}")
    return value


def _fingerprint(value: str) -> str:
    if not _FINGERPRINT.fullmatch(value):
        raise argparse.ArgumentTypeError(
            "a fingerprint is the first 12 lowercase hex characters of SHA-256 of the token"
        )
    return value


def _scope(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty --scope (give one or more scopes, e.g. 'fr:idm:*')")
    return value


def _seconds(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,3}", value) or int(value) > MAX_MIN_VALIDITY:
        raise argparse.ArgumentTypeError(f"not a number of seconds from 0 to {MAX_MIN_VALIDITY}: {value!r}")
    return int(value)


def _aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region",
        help="AWS region (default: the URL's or the ARN's, else AWS_REGION, AWS_DEFAULT_REGION or the "
        "profile's; never a guess)",
    )
    parser.add_argument("--profile", help="AWS profile for credentials (default: the standard chain)")


def _source_options(parser: argparse.ArgumentParser, *, min_validity_default: int | None) -> None:
    """Where the token comes from and for what: shared by the plain command and ``exec``."""
    parser.add_argument(
        "--scope",
        action="append",
        required=True,
        type=_scope,
        help="scope(s); repeat or separate with spaces, quoted: 'fr:idm:*'",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", type=_url, help="the token API URL (…/v1/token), called with SigV4")
    where.add_argument("--function", type=_function, help="the vendor function's name or ARN (Lambda invoke)")
    default = DEFAULT_MIN_VALIDITY if min_validity_default is None else min_validity_default
    parser.add_argument(
        "--min-validity",
        type=_seconds,
        default=min_validity_default,
        metavar="SECONDS",
        help=f"seconds the token must still live, 0 to {MAX_MIN_VALIDITY} (default: {default})",
    )
    parser.add_argument(
        "--no-identity-proof",
        action="store_true",
        help="with --function: send no proof of identity (the vendor applies DIRECT_INVOKE_SCOPES, "
        "not CALLER_POLICY)",
    )
    parser.add_argument(
        "--service",
        choices=("execute-api", "lambda"),
        help="what --url is signed for: execute-api (API Gateway) or lambda (a function URL); "
        "default: from the URL's host",
    )
    _aws_options(parser)


def _client(args: argparse.Namespace) -> TokenClient:
    from token_client.transports import new_session

    session = new_session(args.profile)
    if args.url:
        return TokenClient.for_url(args.url, region=args.region, session=session, service=args.service)
    return TokenClient.for_function(
        args.function, region=args.region, session=session, prove_identity=not args.no_identity_proof
    )


def _fail(exc: TokenClientError) -> int:
    sys.stderr.write(f"{PROG}: {type(exc).__name__}: {' '.join(exc.message.split())}\n")
    return EXIT_CODES.get(type(exc), 7)
