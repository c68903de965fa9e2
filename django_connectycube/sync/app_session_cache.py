"""The application session token on a Django cache, shared by every process and worker.

The client keeps its token in any :class:`~.client.stores.AppSessionStore`; this one puts it in
a Django cache alias (``CONNECTYCUBE["CACHE"]``), so one token serves the whole site and one process
renews it while the others wait briefly and re-read.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.core.cache import caches

from django_connectycube.client.stores import StoredAppSession

__all__ = ["DjangoCacheAppSessionStore"]


class DjangoCacheAppSessionStore:
    """A store on a Django cache alias: every process using that cache shares the token.

    The renewal lock is a cache ``add()`` (atomic on Redis, Memcached and the database cache), so
    one process renews while the others wait briefly and re-read.
    """

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    @property
    def cache(self) -> Any:
        """The cache, looked up per use: tests replace ``CACHES`` after the store is built."""
        return caches[self.alias]

    def get(self, key: str) -> StoredAppSession | None:
        return StoredAppSession.from_dict(self.cache.get(key))

    def set(self, key: str, session: StoredAppSession) -> None:
        ttl = max(1, int(session.expires_at - time.time()))
        self.cache.set(key, session.to_dict(), timeout=ttl)

    def delete(self, key: str) -> None:
        self.cache.delete(key)

    def acquire_lock(self, key: str, timeout: float) -> str | None:
        owner = uuid.uuid4().hex
        if self.cache.add(f"{key}:lock", owner, timeout=max(1, int(timeout))):
            return owner
        return None

    def release_lock(self, key: str, owner: str) -> None:
        lock_key = f"{key}:lock"
        if self.cache.get(lock_key) == owner:
            self.cache.delete(lock_key)
