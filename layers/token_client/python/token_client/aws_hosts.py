"""How to sign for a vendor URL: the SigV4 service and region its AWS host names, in every partition.

API Gateway hosts are ``{api-id}.execute-api.{region}.{dnsSuffix}`` (``amazonaws.com``,
``amazonaws.com.cn``, ``c2s.ic.gov``, … and ``{api-id}-{vpce-id}.…`` or ``…{region}.vpce.{dnsSuffix}``
for private APIs); function URLs are ``{url-id}.lambda-url.{region}.on.aws``. The signing scope lives in
the two labels after the first, so the domain after them is not matched here: what makes a label a region
is botocore's own partition data (``partitions.json``'s ``regionRegex``), not a list of ours. A host that
names no region (a custom domain) gives None and the caller falls back to the session's region.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

import botocore.loaders

_SERVICES = {"execute-api": "execute-api", "lambda-url": "lambda"}
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.ASCII)


@functools.cache
def _region_patterns() -> tuple[re.Pattern[str], ...]:
    document = botocore.loaders.create_loader().load_data("partitions")
    return tuple(
        re.compile(str(p["regionRegex"]).removeprefix("^").removesuffix("$"), re.ASCII)
        for p in document["partitions"]
    )


def is_region(label: str) -> bool:
    """True for a region some partition claims (``cn-north-1``, ``eusc-de-east-1``, ``us-isob-east-1``)."""
    return bool(_LABEL.fullmatch(label)) and any(p.fullmatch(label) for p in _region_patterns())


def signing_scope(url: str) -> tuple[str, str] | None:
    """``("lambda", "cn-north-1")`` for ``https://abc.lambda-url.cn-north-1.on.aws/token``;
    ``("execute-api", "cn-north-1")`` for ``https://abc.execute-api.cn-north-1.amazonaws.com.cn/v1/token``."""
    labels = (urlsplit(url).hostname or "").split(".")
    if len(labels) < 4 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    service = _SERVICES.get(labels[1])
    if service is None or not is_region(labels[2]):
        return None
    return service, labels[2]
