"""``aic-token exec``: run a command with a fresh token in its environment, never on its command line.

    aic-token exec --scope 'fr:idm:*' --function token-vendor [--env NAME ...] -- COMMAND ARG...

The token goes into ``AIC_ACCESS_TOKEN`` (or each ``--env`` name instead), with ``AIC_TOKEN_EXPIRES_AT``
(seconds since the epoch) beside it, and the command replaces this process (``execvpe``): its exit code
and its signals are its own, and no Python process waits with the token in memory. A failure to get the
token is the CLI's usual exit code and the command does not run. A command that is not found is 127, one
that cannot be run 126, as a shell says.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from token_client.errors import TokenClientError

DEFAULT_ENV = "AIC_ACCESS_TOKEN"
EXPIRES_ENV = "AIC_TOKEN_EXPIRES_AT"
DEFAULT_MIN_VALIDITY = 300  # a command's run: five minutes left at its start, unless --min-validity says
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Execute = Callable[[str, Sequence[str], Mapping[str, str]], NoReturn]


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(f"not an environment variable name: {value!r}")
    return value


def parser() -> argparse.ArgumentParser:
    from token_client.cli_common import PROG, _OneLineParser, _source_options

    p = _OneLineParser(
        prog=f"{PROG} exec",
        usage=f"{PROG} exec --scope S (--url URL | --function NAME_OR_ARN) [options] -- COMMAND [ARG ...]",
        description=(
            f"Run COMMAND with a fresh AIC access token in ${DEFAULT_ENV} (or --env NAME) and its expiry "
            f"in ${EXPIRES_ENV}; the token is never on a command line. Exit code: COMMAND's own (127: not "
            "found); when no token can be had, the CLI's usual code and COMMAND does not run."
        ),
    )
    p.add_argument(
        "--env",
        action="append",
        type=_env_name,
        metavar="NAME",
        help=f"the variable the command reads the token from (repeatable; default {DEFAULT_ENV})",
    )
    _source_options(p, min_validity_default=DEFAULT_MIN_VALIDITY)
    return p


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" not in argv:
        parser().parse_args(argv)  # --help, or the options' own mistakes first
        parser().error("give the command after --, e.g. -- frodo info")
    at = argv.index("--")
    options, command = argv[:at], argv[at + 1 :]
    if not command:
        parser().error("no command after --")
    return options, command


def run(argv: list[str], *, execute: Execute = os.execvpe) -> int:  # type: ignore[assignment]
    from token_client.cli_common import _client, _fail

    options, command = _split(argv)
    args = parser().parse_args(options)
    try:
        token = _client(args).get_token(args.scope, min_validity=args.min_validity)
    except TokenClientError as exc:
        return _fail(exc)
    environment = dict(os.environ)
    for name in args.env or [DEFAULT_ENV]:
        environment[name] = token.access_token
    environment[EXPIRES_ENV] = str(int(token.expires_at))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        execute(command[0], command, environment)
    except FileNotFoundError:
        sys.stderr.write(f"aic-token exec: {command[0]}: command not found\n")
        return 127
    except OSError as exc:
        sys.stderr.write(f"aic-token exec: {command[0]}: {exc.strerror or type(exc).__name__}\n")
        return 126
    return 0  # only an injected execute returns
