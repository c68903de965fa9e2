"""The client's address as the login guard and the throttles count it.

Behind reverse proxies ``REMOTE_ADDR`` is the nearest proxy, so every client would share one
address; the client is then the ``NUM_PROXIES``-th address from the right of
``X-Forwarded-For``, counted by DRF's own ``REST_FRAMEWORK["NUM_PROXIES"]`` so DRF's throttles
and these counters agree on who the client is (DRF's ``None`` counts as no proxy here). Only
addresses the trusted proxies appended are used: whatever the client itself wrote at the left
of the header is ignored, so a forged header cannot choose the counter it lands in. IPv6
clients are bucketed per ``/64``, the block one subscriber usually holds, or an attacker could
use a fresh address for every guess.
"""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest
from rest_framework.settings import api_settings

__all__ = ["client_ip"]

#: IPv6 prefix length of one bucket.
IPV6_BUCKET = 64


def _normalized(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/{IPV6_BUCKET}", strict=False))
    return str(address)


def client_ip(request: HttpRequest) -> str:
    """The client address: from ``X-Forwarded-For`` behind ``NUM_PROXIES`` proxies, else
    ``REMOTE_ADDR``; ``"unknown"`` when neither holds an address."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    proxies = int(api_settings.NUM_PROXIES or 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies > 0 and forwarded:
        hops = [hop for hop in str(forwarded).split(",") if hop.strip()]
        if hops:
            chosen = _normalized(hops[-min(proxies, len(hops))])
            if chosen is not None:
                return chosen
    return _normalized(remote) or "unknown"
