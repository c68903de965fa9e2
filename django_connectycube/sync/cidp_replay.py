"""Single use for CIdP tokens: each verified token is remembered until it could not pass anyway.

A token ConnectyCube verified once has done its job; a second verification means someone copied
it (from an access log, a proxy, a browser history) and is replaying it. ``cache.add`` is atomic
("create if absent"), so of two simultaneous verifications of one token exactly one wins. The
entry lives as long as the token could still be accepted (its maximum age plus the clock
skew), then the token's own expiry refuses it. ``CONNECTYCUBE["CACHE"]`` must be a cache every
process shares (Redis); with a per-process cache each process remembers only its own
verifications. Keys hold a hash of the token, never the token.
"""

from __future__ import annotations

import hashlib

from django.core.cache import caches

from django_connectycube.conf import app_settings

__all__ = ["first_use"]

_PREFIX = "connectycube:cidp:used"


def first_use(token: str, lifetime: int) -> bool:
    """Record the token as used for ``lifetime`` seconds (as long as it could still pass);
    ``True`` only the first time it is seen."""
    ttl = lifetime + 1
    key = f"{_PREFIX}:{hashlib.sha256(token.encode('utf-8')).hexdigest()}"
    return bool(caches[app_settings.CACHE].add(key, 1, max(ttl, 1)))
