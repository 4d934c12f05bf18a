"""``HTTPS_PROXY``/``https_proxy``/``HTTP_PROXY`` and ``NO_PROXY``/``no_proxy`` for the client's own HTTP
calls, with botocore's semantics: botocore's own functions choose the proxy (``get_environ_proxies``,
which is the standard library's ``getproxies`` and ``proxy_bypass``) and spell it
(``ProxyConfiguration``: a bare ``host:port`` means ``http://``, credentials in the URL become
``Proxy-Authorization``); an ``https://`` target goes through a CONNECT tunnel, as botocore's does. The
Lambda invoke path needs none of this: botocore already honours the same variables.
"""

from __future__ import annotations

import threading
from typing import Any

import urllib3
from botocore.httpsession import ProxyConfiguration
from botocore.utils import get_environ_proxies


def proxy_for(url: str) -> tuple[str, dict[str, str]] | None:
    """The proxy URL and headers for ``url`` as botocore would choose them now; None: go direct."""
    config = ProxyConfiguration(proxies=get_environ_proxies(url))
    proxy = config.proxy_url_for(url)
    if not proxy:
        return None
    return proxy, config.proxy_headers_for(proxy)


class ProxyAwarePool:
    """A urllib3 pool per route: direct, or one ``ProxyManager`` per proxy; the environment is read on
    each request, so a Lambda's configuration or a test's applies without a new client."""

    def __init__(self, **pool_kwargs: Any) -> None:
        self._kwargs = pool_kwargs
        self._direct = urllib3.PoolManager(**pool_kwargs)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._guard = threading.Lock()

    def manager_for(self, url: str) -> urllib3.PoolManager:
        route = proxy_for(url)
        if route is None:
            return self._direct
        proxy, headers = route
        with self._guard:
            if proxy not in self._proxied:
                self._proxied[proxy] = urllib3.ProxyManager(proxy, proxy_headers=headers, **self._kwargs)
            return self._proxied[proxy]

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.manager_for(url).request(method, url, **kwargs)
