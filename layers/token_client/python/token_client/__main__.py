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
import sys
import time

from botocore.exceptions import BotoCoreError

from token_client.cli_common import (
    PROG,
    _aws_options,
    _client,
    _fail,
    _fingerprint,
    _OneLineParser,
    _source_options,
)
from token_client.client import fingerprint
from token_client.errors import TokenClientError
from token_client.transports import local_problem

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
