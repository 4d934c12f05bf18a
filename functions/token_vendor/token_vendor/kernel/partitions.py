"""Which AWS partition a region is in, and its STS endpoint, from botocore's own partition data.

botocore ships ``botocore/data/partitions.json`` (the endpoint rulesets' ``aws.partition`` function reads
it): each partition's ``regionRegex`` and ``dnsSuffix`` (``amazonaws.com``, ``amazonaws.com.cn``,
``amazonaws.eu``, ``c2s.ic.gov``, …). STS's ruleset builds a regional endpoint as
``https://sts.{Region}.{dnsSuffix}``; so do we, with no table of our own. The file is 7 KB and loads in
about 0.1 ms (``endpoints.json``, 1.2 MB, would cost ~14 ms of cold start): see docs/decisions.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import botocore.loaders

# A region name as a DNS label: lower-case ASCII letters and digits in hyphen-separated words. The
# partition's regex then decides; re.ASCII because botocore's \w and \d would also match non-ASCII.
_REGION_SHAPE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+", re.ASCII)


@functools.cache
def botocore_partitions() -> tuple[Mapping[str, Any], ...]:
    """botocore's ``partitions.json``, as its loader finds it (``AWS_DATA_PATH`` and ``~/.aws/models``
    override it exactly as they do for botocore's own clients)."""
    document = botocore.loaders.create_loader().load_data("partitions")
    return tuple(document["partitions"])


def dns_suffix_of(region: str, partitions: Sequence[Mapping[str, Any]] | None = None) -> str | None:
    """The ``dnsSuffix`` of the partition whose ``regionRegex`` claims ``region``, or None (garbage, or a
    pseudo-region such as ``aws-global`` that no regional endpoint serves)."""
    if len(region) > 63 or not _REGION_SHAPE.fullmatch(region):
        return None
    for partition in botocore_partitions() if partitions is None else partitions:
        pattern = str(partition["regionRegex"]).removeprefix("^").removesuffix("$")
        if re.fullmatch(pattern, region, re.ASCII):
            return str(partition["outputs"]["dnsSuffix"])
    return None


def sts_endpoint(region: str, partitions: Sequence[Mapping[str, Any]] | None = None) -> str | None:
    """``https://sts.cn-north-1.amazonaws.com.cn/`` for ``cn-north-1``; None for a region no partition
    claims."""
    suffix = dns_suffix_of(region, partitions)
    return None if suffix is None else f"https://sts.{region}.{suffix}/"
