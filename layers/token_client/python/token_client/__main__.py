"""``python -m token_client --scope "fr:idm:*" (--url URL | --function NAME) [--header]``

Prints the access token (or an ``Authorization: Bearer …`` line) for shell use, without ever holding the
service account's key. Exit codes: 0 token printed; 2 bad arguments; 3 invalid request or scope;
4 access denied; 5 AIC rejected the request; 6 unavailable (retry later); 7 any other failure.
Errors go to stderr in one line.
"""

from __future__ import annotations

import argparse
import sys

from token_client.client import TokenClient
from token_client.errors import (
    AccessDenied,
    InvalidRequest,
    InvalidScope,
    TokenClientError,
    TransportError,
    UpstreamRejected,
    UpstreamUnavailable,
)

EXIT_CODES: dict[type[TokenClientError], int] = {
    InvalidRequest: 3,
    InvalidScope: 3,
    AccessDenied: 4,
    UpstreamRejected: 5,
    UpstreamUnavailable: 6,
    TransportError: 6,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m token_client", description="Get an AIC access token.")
    parser.add_argument("--scope", required=True, help='space-separated scopes, e.g. "fr:idm:*"')
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the token API URL (…/v1/token), called with SigV4")
    where.add_argument("--function", help="the vendor function's name or ARN, invoked directly")
    parser.add_argument("--header", action="store_true", help="print 'Authorization: Bearer …' instead")
    parser.add_argument("--min-validity", type=int, default=None, help="seconds the token must still live")
    args = parser.parse_args(argv)

    client = TokenClient.for_url(args.url) if args.url else TokenClient.for_function(args.function)
    try:
        token = client.get_token(args.scope, min_validity=args.min_validity)
    except TokenClientError as exc:
        print(f"token_client: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return EXIT_CODES.get(type(exc), 7)
    line = f"Authorization: Bearer {token.access_token}" if args.header else token.access_token
    sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
