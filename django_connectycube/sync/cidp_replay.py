"""Single use for CIdP tokens: each verified token is remembered until it could not pass anyway.

A token ConnectyCube verified once has done its job; a second verification means someone copied
it (from an access log, a proxy, a browser history) and is replaying it. ``cache.add`` is atomic
("create if absent"), so of two simultaneous verifications of one token exactly one wins. The
entry lives as long as the token could still be accepted (``CIDP_TOKEN_MAX_AGE`` plus the clock
skew), then the token's own expiry refuses it. ``CIDP_REPLAY_CACHE`` must be a cache every
process shares (Redis); with a per-process cache each process remembers only its own
verifications. Keys hold a hash of the token, never the token.
"""

from __future__ import annotations

import hashlib

from django.core.cache import caches

from django_connectycube.conf import app_settings

__all__ = ["first_use"]

_PREFIX = "connectycube:cidp:used"


def first_use(token: str) -> bool:
    """Record the token as used; ``True`` only the first time it is seen."""
    ttl = int(app_settings.CIDP_TOKEN_MAX_AGE) + int(app_settings.CIDP_CLOCK_SKEW) + 1
    key = f"{_PREFIX}:{hashlib.sha256(token.encode('utf-8')).hexdigest()}"
    return bool(caches[app_settings.CIDP_REPLAY_CACHE].add(key, 1, max(ttl, 1)))
