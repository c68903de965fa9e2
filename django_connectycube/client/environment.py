"""What the transport takes from the process environment: proxies and the CA bundle.

requests reads them itself before every request when a session trusts the environment: it scans
``os.environ`` for proxy variables (twice, for ``NO_PROXY``), and looks the host up in
``~/.netrc``, whose entry it would send as Basic credentials. Here the sessions do not trust the
environment; the proxy and CA-bundle variables are read once per origin (scheme and host) and
passed with each request, and ``~/.netrc`` is never read: ConnectyCube authenticates by its own
headers. A variable changed after a client was built applies to the clients built after it.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

from requests.utils import get_environ_proxies

__all__ = ["EnvironmentSettings"]

#: Origins remembered per client (the API and the storage hosts of blob uploads); past this
#: many the cache starts over rather than grow.
MAX_ORIGINS = 64


class EnvironmentSettings:
    """``proxies`` and ``verify`` for a URL, as requests would derive them from the
    environment (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``), read once per origin."""

    def __init__(self) -> None:
        self._by_origin: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def for_url(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        settings = self._by_origin.get(origin)
        if settings is None:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            settings = {"proxies": get_environ_proxies(url), "verify": verify or True}
            with self._lock:
                if len(self._by_origin) >= MAX_ORIGINS:
                    self._by_origin.clear()
                self._by_origin[origin] = settings
        return settings
