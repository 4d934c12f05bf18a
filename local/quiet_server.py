"""A threading HTTP server for the local stack that does not print tracebacks for clients that left.

Tests make clients give up on purpose (read timeouts against a slow stand-in); the server then finds the
connection closed when it answers. That is expected, not an error worth a traceback on stderr.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)
