"""Wiring, once per execution environment: settings, AWS clients, the vendor's collaborators.

``compose_vendor`` is the one place the vendor's collaborators are built and handed to one another (the
graph is drawn in ``vend/context``'s docstring); ``build_vendor`` gives it the AWS clients.

Clients are created once and reused (never per invocation); they honour ``AWS_ENDPOINT_URL``, so the same
code runs against the local moto server and against AWS. A bad setting is logged once, in one line that
names the variable, and every invocation then fails with ``ConfigurationError``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import botocore.session

from token_vendor.access.authorization import Authorizer
from token_vendor.adapters.aic.token_endpoint import TokenEndpoint
from token_vendor.adapters.aws.bounded_client import CLIENT_CONFIG, BoundedClient
from token_vendor.adapters.aws.envelope import Envelope
from token_vendor.adapters.aws.key_source import KeySource
from token_vendor.adapters.aws.token_table import TokenTable
from token_vendor.adapters.http.bounded_http import endpoint_pool
from token_vendor.kernel import snapshot
from token_vendor.kernel.errors import ConfigurationError
from token_vendor.kernel.settings import Egress, Settings, load_egress, load_settings
from token_vendor.kernel.signer import Signer
from token_vendor.vend.context import CacheHealth, Clocks, MetricsSink, NoMetrics, VendContext
from token_vendor.vend.fleet_lease import LEASE_SECONDS, FleetLease
from token_vendor.vend.locks import KeyLocks
from token_vendor.vend.memory_cache import MemoryCache
from token_vendor.vend.minting import Minter
from token_vendor.vend.retirement import Retirement
from token_vendor.vend.vending import SlowPath, TokenVendor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from token_vendor.adapters.aws.identity_proof import ProofVerifier
    from token_vendor.vend.scheduled_refresh import ScheduledRefresher

logger = logging.getLogger("token_vendor").getChild(__name__)


def _client(session: botocore.session.Session, service: str) -> Any:
    """A client whose every call ends by the vend's deadline (bounded_client): timeouts and attempts come
    from the time left, not from fixed settings."""
    client = session.create_client(service, config=CLIENT_CONFIG)
    snapshot.after_restore(client.close)  # a copy of the process (SnapStart) opens its own connections
    return BoundedClient(client)


def compose_vendor(
    settings: Settings,
    *,
    key_source: Signer,
    endpoint: TokenEndpoint,
    dynamodb: DynamoDBClient,
    envelope: Envelope | None = None,
    memory: MemoryCache | None = None,
    metrics: MetricsSink | None = None,
    clocks: Clocks | None = None,
    lease_seconds: float = LEASE_SECONDS,
    new_jti: Callable[[], str] = lambda: str(uuid.uuid4()),
    locks: KeyLocks | None = None,
) -> TokenVendor:
    """The vendor's collaborators, each given what it uses (vend/context's docstring draws the graph)."""
    # "is None", never "or": an empty KeyLocks or MemoryCache is falsy (it has a length).
    metrics = metrics if metrics is not None else NoMetrics()
    clocks = clocks if clocks is not None else Clocks()
    health = CacheHealth(settings, metrics)
    table = TokenTable(
        settings.table_name,
        dynamodb,
        clock=clocks.wall,
        envelope=envelope,
        on_misconfigured=health.misconfigured,
    )
    context = VendContext(
        settings,
        table=table,
        memory=memory if memory is not None else MemoryCache(),
        metrics=metrics,
        clocks=clocks,
        health=health,
    )
    minter = Minter(context, key_source=key_source, endpoint=endpoint, new_jti=new_jti)
    lease = FleetLease(context, minter, lease_seconds=lease_seconds)
    slow_path = SlowPath(context, minter, lease)
    return TokenVendor(
        context,
        authorizer=Authorizer(settings, on_denied=lambda: context.count("AccessDenied")),
        slow_path=slow_path,
        retirement=Retirement(context, minter, lease, slow_path=slow_path.serve),
        minter=minter,
        locks=locks if locks is not None else KeyLocks(),
    )


def build_vendor(
    settings: Settings,
    session: botocore.session.Session | None = None,
    memory: MemoryCache | None = None,
    egress: Egress | None = None,
) -> TokenVendor:
    # botocore directly: boto3 adds resources and s3transfer (~40 ms of cold start) that we never use.
    session = session or botocore.session.get_session()
    wall = time.time
    envelope = None
    if settings.cache_key_id:
        envelope = Envelope(
            settings.cache_key_id,
            cast("KMSClient", _client(session, "kms")),
            clock=wall,
            context={"purpose": "token-cache", "table": settings.table_name},
        )
    else:
        logger.warning("TOKEN_CACHE_KEY_ID is not set: cached tokens are stored unencrypted")
    keys = _signer(settings, session)
    from token_vendor.kernel.observability import METRICS

    return compose_vendor(
        settings,
        key_source=keys,
        endpoint=TokenEndpoint(
            settings.token_endpoint_url, pool=endpoint_pool(egress or Egress()), metrics=METRICS
        ),
        dynamodb=cast("DynamoDBClient", _client(session, "dynamodb")),
        envelope=envelope,
        memory=memory if memory is not None else MemoryCache(),
        metrics=METRICS,
        clocks=Clocks(wall=wall),
    )


def _signer(settings: Settings, session: botocore.session.Session) -> Signer:
    """Keyless (``SIGNING_KEY_ID``): kms:Sign, and no Secrets Manager client or private key at all;
    otherwise the key read from Secrets Manager. Clients are created on first use: a cold start served
    from the table never needs them."""
    if settings.signing_key_id:
        from token_vendor.adapters.aws.kms_signer import KmsSigner

        return KmsSigner(
            settings.signing_key_id,
            lambda: cast("KMSClient", _client(session, "kms")),
            account_id=settings.service_account_id or "",
            clock=time.monotonic,
        )
    if settings.secret_id is None:  # settings guarantee one of the two
        raise ConfigurationError("setting SERVICE_ACCOUNT_SECRET_ID is required and is missing or empty")
    return KeySource(
        settings.secret_id,
        lambda: cast("SecretsManagerClient", _client(session, "secretsmanager")),
        clock=time.monotonic,
        env_account_id=settings.service_account_id,
    )


class Runtime:
    """Holds the vendor for this execution environment, or the configuration error that prevents one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._vendor: TokenVendor | None = None
        self._error: ConfigurationError | None = None
        self._logged = False
        self._lock = threading.Lock()
        self._verifier: ProofVerifier | None = None
        self._refresher: ScheduledRefresher | None = None
        self._egress: Egress | None = None  # proxies and CA bundle for the exchange and STS

    def prepare(self) -> None:
        """Wire the vendor now. ``app`` calls this at import, so Lambda's init phase pays for the settings
        and the AWS clients. A bad setting is kept, not raised: it surfaces on the first invocation."""
        with self._lock:
            if self._vendor is None and self._error is None:
                try:
                    environ = self._environ or os.environ
                    self._egress = load_egress(environ)
                    self._vendor = build_vendor(load_settings(environ), egress=self._egress)
                except ConfigurationError as exc:
                    self._error = exc

    def proof_verifier(self) -> ProofVerifier:
        """Created on the first identity proof: callers without one never pay for it."""
        self.prepare()  # the egress settings (a bad one fails the invocation on the vendor anyway)
        with self._lock:
            if self._verifier is None:
                from token_vendor.adapters.aws.identity_proof import ProofVerifier  # on the first proof only

                pool = endpoint_pool(self._egress or Egress())
                self._verifier = ProofVerifier(pool=pool, clock=time.time)
            return self._verifier

    def refresher(self) -> ScheduledRefresher:
        """Created on the first scheduled run: the function serving callers never pays for it."""
        vendor = self.vendor()
        with self._lock:
            if self._refresher is None:
                from token_vendor.kernel.observability import METRICS
                from token_vendor.vend.scheduled_refresh import ScheduledRefresher

                self._refresher = ScheduledRefresher(
                    vendor,
                    vendor.table,
                    tenant=vendor.settings.tenant_fqdn,
                    account_ref=vendor.account_ref,
                    keep_warm_seconds=vendor.settings.keep_warm_seconds,
                    clock=time.time,
                    metrics=METRICS,
                )
            return self._refresher

    def vendor(self) -> TokenVendor:
        if self._vendor is not None:
            return self._vendor
        self.prepare()
        with self._lock:
            if self._error is not None:
                if not self._logged:  # one line per execution environment, naming the variable
                    logger.error(self._error.message)
                    self._logged = True
                raise ConfigurationError(self._error.message) from self._error
            if self._vendor is None:  # unreachable: prepare() sets one of the two
                raise ConfigurationError("token vendor could not be configured")
            return self._vendor
