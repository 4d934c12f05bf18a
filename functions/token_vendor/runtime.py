"""Wiring, once per execution environment: settings, AWS clients, the vendor.

Clients are created once and reused (never per invocation); they honour ``AWS_ENDPOINT_URL``, so the same
code runs against the local moto server and against AWS. A bad setting is logged once, in one line that
names the variable, and every invocation then fails with ``ConfigurationError``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

import botocore.session
from botocore.config import Config

from envelope import Envelope
from errors import ConfigurationError
from key_source import KeySource
from memory_cache import MemoryCache
from settings import Settings, load_settings
from token_endpoint import TokenEndpoint
from token_table import TokenTable
from vending import TokenVendor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = logging.getLogger("token_vendor").getChild(__name__)

# Fail fast on AWS: a slow dependency must degrade (table) or surface (secret), not eat the budget.
_AWS_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 2})


def build_vendor(
    settings: Settings, session: botocore.session.Session | None = None, memory: MemoryCache | None = None
) -> TokenVendor:
    # botocore directly: boto3 adds resources and s3transfer (~40 ms of cold start) that we never use.
    session = session or botocore.session.get_session()
    wall = time.time
    envelope = None
    if settings.cache_key_id:
        envelope = Envelope(
            settings.cache_key_id,
            cast("KMSClient", session.create_client("kms", config=_AWS_CONFIG)),
            clock=wall,
            context={"purpose": "token-cache", "table": settings.table_name},
        )
    else:
        logger.warning("TOKEN_CACHE_KEY_ID is not set: cached tokens are stored unencrypted")
    table = TokenTable(
        settings.table_name,
        cast("DynamoDBClient", session.create_client("dynamodb", config=_AWS_CONFIG)),
        clock=wall,
        envelope=envelope,
    )
    keys = KeySource(
        settings.secret_id,
        # Created on first use: a cold start served from the table never needs it.
        lambda: cast("SecretsManagerClient", session.create_client("secretsmanager", config=_AWS_CONFIG)),
        clock=time.monotonic,
        env_account_id=settings.service_account_id,
    )
    from observability import METRICS

    return TokenVendor(
        settings,
        key_source=keys,
        endpoint=TokenEndpoint(settings.token_endpoint_url),
        table=table,
        memory=memory if memory is not None else MemoryCache(),
        metrics=METRICS,
    )


class Runtime:
    """Holds the vendor for this execution environment, or the configuration error that prevents one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._vendor: TokenVendor | None = None
        self._error: ConfigurationError | None = None
        self._lock = threading.Lock()

    def vendor(self) -> TokenVendor:
        if self._vendor is not None:
            return self._vendor
        with self._lock:
            if self._vendor is None and self._error is None:
                try:
                    self._vendor = build_vendor(load_settings(self._environ or os.environ))
                except ConfigurationError as exc:
                    logger.error(exc.message)
                    self._error = exc
            if self._error is not None:
                raise ConfigurationError(self._error.message) from self._error
            if self._vendor is None:  # unreachable: one of the two is always set here
                raise ConfigurationError("token vendor could not be configured")
            return self._vendor
