"""Every AWS call ends by the invocation's deadline (CONTRACT section 8).

botocore's timeouts and retries are fixed per client: ``max_attempts: 2`` in legacy mode is three attempts,
each with its own read timeout, whatever time is left. So the clients here make one attempt each
(``total_max_attempts: 1``) and ``BoundedClient`` decides, per call, from the time left:

- before each attempt, less than ``MIN_ATTEMPT_SECONDS`` left is ``NoTimeLeft`` (no request is sent);
- each attempt's read timeout is the smaller of the client's and the time left (botocore honours a
  ``read_timeout`` in the request context, set here from its ``before-send`` event);
- a failure worth another attempt (a connection error, a timeout, throttling, a 5xx) is retried once,
  only if the backoff and another attempt still fit.

The connect timeout stays the client's (``CONNECT_TIMEOUT``, within ``deadline.SAFETY_MARGIN_SECONDS``).
The deadline is the one of the vend running on this thread (``within``); outside a vend, calls run as
configured (the init phase, tools).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from token_vendor.kernel import snapshot
from token_vendor.kernel.deadline import Deadline
from token_vendor.kernel.errors import NoTimeLeft

CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 2.0
MAX_ATTEMPTS = 2
MIN_ATTEMPT_SECONDS = 0.1
BACKOFF_SECONDS = 0.1
CLIENT_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
    retries={"mode": "standard", "total_max_attempts": 1},  # attempts are BoundedClient's to decide
)
_RETRYABLE_ERRORS = (ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError)
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)


class _Current(threading.local):
    deadline: Deadline | None = None


_current = _Current()


@contextmanager
def within(deadline: Deadline) -> Iterator[None]:
    """AWS calls made on this thread inside the block end by ``deadline``."""
    previous, _current.deadline = _current.deadline, deadline
    try:
        yield
    finally:
        _current.deadline = previous


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, NoTimeLeft):
        return False
    if isinstance(exc, _RETRYABLE_ERRORS):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _THROTTLING or status >= 500
    return False


class BoundedClient:
    """A botocore client whose every call ends by the current vend's deadline; otherwise the client."""

    def __init__(
        self,
        client: Any,
        *,
        read_timeout: float = READ_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._read_timeout = read_timeout
        self._sleep = sleep
        self._rng = rng or snapshot.fresh_random()  # jitter: re-seeded after a restore
        client.meta.events.register("before-send", self._before_send)

    @property
    def unbounded(self) -> Any:
        """The client itself (a Stubber attaches here)."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute) or name in ("can_paginate", "get_paginator"):
            return attribute
        return lambda **kwargs: self._call(name, attribute, kwargs)

    def _call(self, name: str, operation: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        deadline = _current.deadline
        if deadline is None:
            return operation(**kwargs)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if deadline.remaining() < MIN_ATTEMPT_SECONDS:
                raise NoTimeLeft(operation=name)
            try:
                return operation(**kwargs)
            except (BotoCoreError, ClientError) as exc:
                delay = self._rng.uniform(0, BACKOFF_SECONDS)
                if (
                    attempt == MAX_ATTEMPTS
                    or not _retryable(exc)
                    or deadline.remaining() < delay + MIN_ATTEMPT_SECONDS
                ):
                    raise
                self._sleep(delay)
        raise NoTimeLeft(operation=name)  # unreachable: the last attempt returns or raises

    def _before_send(self, request: Any, **kwargs: Any) -> None:
        deadline = _current.deadline
        context = getattr(request, "context", None)
        if deadline is None or context is None:
            return
        context["read_timeout"] = max(0.01, min(self._read_timeout, deadline.remaining()))
