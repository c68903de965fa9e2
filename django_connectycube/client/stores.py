"""Where the application session token lives, so every client, process and worker shares one.

A store holds one :class:`StoredAppSession` per key and offers a short lock so that only one
holder renews the token at a time. ``MemoryAppSessionStore`` (the client's default) serves one
process; a store shared between processes is the host application's to give (the Django app
passes one on its cache, ``django_connectycube.app_session_cache``).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AppSessionStore",
    "MemoryAppSessionStore",
    "StoredAppSession",
    "store_key",
]


@dataclass(frozen=True)
class StoredAppSession:
    """An application token and when it expires (Unix seconds, on this machine's clock)."""

    token: str
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        """A cache-friendly representation."""
        return {"token": self.token, "expires_at": self.expires_at}

    @classmethod
    def from_dict(cls, data: Any) -> StoredAppSession | None:
        """Read back what :meth:`to_dict` wrote; anything else reads as no session."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(token=str(data["token"]), expires_at=float(data["expires_at"]))
        except (KeyError, TypeError, ValueError):
            return None

    def __repr__(self) -> str:
        return f"StoredAppSession(token='[redacted]', expires_at={self.expires_at!r})"


def store_key(api_url: str, application_id: int | str, auth_key: str) -> str:
    """The key for one application on one server; the auth key is hashed, never stored."""
    digest = hashlib.sha256(f"{api_url}|{application_id}|{auth_key}".encode()).hexdigest()[:24]
    return f"django_connectycube:app_session:{digest}"


@runtime_checkable
class AppSessionStore(Protocol):
    """The pluggable store of application sessions."""

    def get(self, key: str) -> StoredAppSession | None:
        """The stored session, or None."""
        ...

    def set(self, key: str, session: StoredAppSession) -> None:
        """Store (replace) the session."""
        ...

    def delete(self, key: str) -> None:
        """Forget the session."""
        ...

    def acquire_lock(self, key: str, timeout: float) -> str | None:
        """Take the renewal lock for ``timeout`` seconds; return an owner id, or None if held."""
        ...

    def release_lock(self, key: str, owner: str) -> None:
        """Release the lock if ``owner`` still holds it."""
        ...


class MemoryAppSessionStore:
    """A process-local store: share one instance between clients to share their token."""

    def __init__(self) -> None:
        self._data: dict[str, StoredAppSession] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()

    def get(self, key: str) -> StoredAppSession | None:
        with self._mutex:
            return self._data.get(key)

    def set(self, key: str, session: StoredAppSession) -> None:
        with self._mutex:
            self._data[key] = session

    def delete(self, key: str) -> None:
        with self._mutex:
            self._data.pop(key, None)

    def acquire_lock(self, key: str, timeout: float) -> str | None:
        now = time.monotonic()
        with self._mutex:
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return None
            owner = uuid.uuid4().hex
            self._locks[key] = (owner, now + timeout)
            return owner

    def release_lock(self, key: str, owner: str) -> None:
        with self._mutex:
            held = self._locks.get(key)
            if held is not None and held[0] == owner:
                del self._locks[key]
