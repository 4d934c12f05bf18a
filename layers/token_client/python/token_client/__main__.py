"""``aic-token``: an AIC access token for shell users and CI jobs, and the operator's cache tool.

    aic-token --scope 'fr:idm:*' (--url URL | --function NAME_OR_ARN) [--header | --json]
              [--region R] [--profile P] [--min-validity SECONDS] [--rejected FINGERPRINT]
    aic-token exec --scope 'fr:idm:*' (--url URL | --function NAME_OR_ARN) [--env NAME] -- COMMAND ARG...
    aic-token cache status --table NAME [--region R] [--profile P] [--json]
    aic-token cache flush  --table NAME (--scope S ... | --all) [--yes]

Prints the access token (or an ``Authorization: Bearer …`` line, or the vendor's JSON result) without
ever holding the service account's key. Exit codes: 0 done; 2 bad arguments; 3 invalid request or scope;
4 access denied; 5 AIC rejected the request; 6 unavailable (retry later); 7 anything else. Errors are one
line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import NoReturn
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError

from token_client.client import DEFAULT_MIN_VALIDITY, TokenClient, fingerprint
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
from token_client.transports import local_problem

PROG = "aic-token"
EPILOG = """\
other commands:
  aic-token exec --scope S (--url URL | --function F) [--env NAME] [--min-validity N] -- COMMAND ARG...
                                                        run COMMAND with the token in $AIC_ACCESS_TOKEN
                                                        (never on a command line; exit code: COMMAND's)
  aic-token cache status --table NAME [--json]          the shared cache, without tokens (operators)
  aic-token cache flush --table NAME (--scope S | --all) [--yes]
  aic-token rotate --function ROTATION_FN --idm-url https://TENANT [--finish | --dry-run]
                                                        rotate the account's key (aic-token rotate --help)

environment:
  AWS_PROFILE, AWS_ACCESS_KEY_ID...                    credentials (the standard chain)
  AWS_REGION, AWS_DEFAULT_REGION                       the region, when --region, the URL or the ARN
                                                       names none (no region at all: exit 7)
  AWS_ENDPOINT_URL_LAMBDA                              another Lambda Invoke endpoint for --function
                                                       (the local stack's, say)

exit codes:
  0 printed   2 bad arguments   3 invalid request or scope   4 access denied
  5 AIC rejected the request    6 unavailable, retry later   7 anything else (a setup mistake: the
  message says what to check)
"""
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


def _get_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=PROG,
        description="Get an AIC access token from the token vendor (the key never leaves AWS).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--header", action="store_true", help="print 'Authorization: Bearer …'")
    output.add_argument("--json", action="store_true", help="print the vendor's JSON result")
    parser.add_argument(
        "--rejected",
        type=_fingerprint,
        help="report that AIC refused the token with this fingerprint (401): the vendor retires it",
    )
    _source_options(parser, min_validity_default=None)
    return parser


def _cache_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=f"{PROG} cache", description="Inspect or flush the vendor's shared cache.")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=_OneLineParser)
    status = actions.add_parser("status", help="every cached scope set: seconds left, fingerprint, lease")
    status.add_argument("--table", required=True)
    status.add_argument("--json", action="store_true")
    _aws_options(status)
    flush = actions.add_parser("flush", help="delete cached tokens (after a key rotation or an incident)")
    flush.add_argument("--table", required=True)
    which = flush.add_mutually_exclusive_group(required=True)
    which.add_argument("--scope", action="append", help="the scope set to flush (repeat or space-separate)")
    which.add_argument("--all", action="store_true", help="every scope set")
    flush.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _aws_options(flush)
    return parser


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


def get(argv: list[str]) -> int:
    args = _get_parser().parse_args(argv)
    try:
        client = _client(args)
        if args.rejected:
            token = client.report_rejected(args.scope, args.rejected, min_validity=args.min_validity)
        else:
            token = client.get_token(args.scope, min_validity=args.min_validity)
    except TokenClientError as exc:
        return _fail(exc)
    if args.json:
        document = {
            "access_token": token.access_token,
            "token_type": "Bearer",
            "expires_in": max(0, int(token.expires_at - time.time())),
            "expires_at": int(token.expires_at),
            "scope": token.scope,
            "fingerprint": fingerprint(token.access_token),
        }
        line = json.dumps(document)
    else:
        line = f"Authorization: Bearer {token.access_token}" if args.header else token.access_token
    sys.stdout.write(line + "\n")
    return 0


def cache(argv: list[str]) -> int:
    from token_client.cache_tool import CacheTool

    args = _cache_parser().parse_args(argv)
    try:
        tool = CacheTool.for_table(args.table, region=args.region, profile=args.profile)
        if args.action == "status":
            sys.stdout.write(tool.status_text(as_json=args.json) + "\n")
            return 0
        targets = tool.targets(None if args.all else args.scope)
        if not targets:
            sys.stdout.write("nothing to flush\n")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                sys.stderr.write(
                    f"{PROG}: error: flushing {len(targets)} item(s) needs --yes without a terminal\n"
                )
                return 2
            answer = input(f"flush {len(targets)} cached scope set(s) from {args.table}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                sys.stdout.write("nothing flushed\n")
                return 0
        sys.stdout.write(f"flushed {tool.flush(targets)} item(s)\n")
        return 0
    except TokenClientError as exc:
        return _fail(exc)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aic-token-client")
    except PackageNotFoundError:  # the layer: the package without its distribution metadata
        from token_client import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    try:
        if arguments[:1] == ["cache"]:
            return cache(arguments[1:])
        if arguments[:1] == ["exec"]:
            from token_client.exec_tool import run as run_exec

            return run_exec(arguments[1:])
        if arguments[:1] == ["rotate"]:
            from token_client.rotate import run

            return run(arguments[1:])
        return get(arguments)
    except BotoCoreError as exc:  # a setup problem botocore found before any request
        return _fail(local_problem(exc))
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:  # never a traceback: one line, exit 7
        sys.stderr.write(f"{PROG}: unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())}\n")
        return 7


if __name__ == "__main__":
    raise SystemExit(main())
