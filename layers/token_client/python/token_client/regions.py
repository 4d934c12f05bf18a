"""Which AWS region a CLI command or a client talks to: never a silent default (CONTRACT section 9).

The order is the one a user expects: ``--region`` (or the ``region=`` argument), the region inside a
function ARN, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the profile's ``region``. botocore itself reads
only ``AWS_DEFAULT_REGION`` and the profile; Lambda's runtime and most CI systems set ``AWS_REGION``.

A region botocore's partition data does not name (``eu-wst-2``) is a ``SetupError`` with a hint, not a DNS
failure that would read as "retry later". Used by ``LambdaTransport``, ``aic-token cache`` and ``aic-token
rotate``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from token_client.errors import SetupError

NO_REGION = "no AWS region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or give the function's ARN"


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region in botocore's partition and endpoint data (all partitions: aws, aws-cn, ISO…)."""
    from botocore.loaders import create_loader

    loader = create_loader()
    regions: set[str] = set()
    for partition in loader.load_data("partitions").get("partitions", []):
        regions.update(partition.get("regions", {}))
    for partition in loader.load_data("endpoints").get("partitions", []):
        regions.update(partition.get("regions", {}))
    return frozenset(regions)


def _session_region(session: Any) -> str | None:
    region = getattr(session, "region_name", None)  # a boto3 Session
    if region is None and hasattr(session, "get_config_variable"):
        region = session.get_config_variable("region")  # a botocore Session (profile, AWS_DEFAULT_REGION)
    return region if isinstance(region, str) and region else None


def _arn_region(name: str) -> str | None:
    parts = name.split(":")
    return parts[3] if name.startswith("arn:") and len(parts) > 3 and parts[3] else None


def check_region(region: str) -> str:
    if region not in known_regions():
        raise SetupError(
            f"unknown AWS region {region!r} (a typo? e.g. eu-west-2; check --region, AWS_REGION, "
            "AWS_DEFAULT_REGION and the profile's region)"
        )
    return region


def resolve_region(
    explicit: str | None = None,
    *,
    session: Any = None,
    arn: str | None = None,
    environ: dict[str, str] | os._Environ[str] | None = None,
    also: str = "",
) -> str:
    """The region to use, checked against botocore's data; ``SetupError`` when there is none."""
    env = os.environ if environ is None else environ
    region = (
        explicit
        or (_arn_region(arn) if arn else None)
        or env.get("AWS_REGION", "").strip()
        or env.get("AWS_DEFAULT_REGION", "").strip()
        or _session_region(session)
    )
    if not region:
        raise SetupError(NO_REGION + also)
    return check_region(region)
