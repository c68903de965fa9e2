"""The application session every client of one application shares.

Created on first use and kept in an :class:`~.stores.AppSessionStore`, so every client, process
and worker that shares the store sends one token. It is renewed ``renew_margin`` seconds before
it expires and when the server no longer knows it, by one holder at a time (the store's lock).
A store that fails degrades to a per-process token, never to an error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .redaction import log, redact, register_secret
from .stores import AppSessionStore, StoredAppSession
from .types import Session

__all__ = ["DEFAULT_SESSION_TTL", "SharedAppSession"]

logger = logging.getLogger("django_connectycube")

#: A session lives this long after its last use when the server does not say otherwise.
DEFAULT_SESSION_TTL = 2 * 60 * 60


class SharedAppSession:
    """One application's token in one store: read it, renew it, slide its expiry.

    ``create`` makes a new application session (``POST /session``); ``clock`` is the local
    clock the stored expiries are on.
    """

    def __init__(
        self,
        store: AppSessionStore,
        key: str,
        create: Callable[[], Session],
        *,
        clock: Callable[[], float] = time.time,
        renew_margin: float = 60.0,
        lock_wait: float = 10.0,
    ) -> None:
        self.store, self.key = store, key
        self._create, self._clock = create, clock
        self.renew_margin = renew_margin
        self.lock_wait = lock_wait
        #: Write a slid expiry back to the store only when it moved this far (saves cache writes).
        self.refresh_interval = 300.0
        self._current: StoredAppSession | None = None
        self._lock = threading.Lock()
        self._stored_expiry = 0.0

    def token(self, stale: str | None = None) -> str:
        """A usable token, created or renewed if needed; ``stale`` is one the server refused."""
        current = self._current
        if self._fresh(current, stale):
            return current.token  # type: ignore[union-attr]
        with self._lock:
            current = self._current
            if self._fresh(current, stale):
                return current.token  # type: ignore[union-attr]
            session = self._shared(stale)
            self._current = session
            self._stored_expiry = session.expires_at
            register_secret(session.token)
            return session.token

    def observe(self, token: str, expires_at: float | None) -> None:
        """The server slid ``token``'s expiry to ``expires_at`` (local clock) by answering it."""
        if expires_at is None:
            return
        current = self._current
        if current is not None and current.token == token and expires_at > current.expires_at:
            self._current = StoredAppSession(token=token, expires_at=expires_at)
        if expires_at - self._stored_expiry >= self.refresh_interval:
            stored = self._store("get", self.key)
            if stored is None or stored.token == token:
                self._store("set", self.key, StoredAppSession(token, expires_at))
            self._stored_expiry = expires_at

    def _fresh(self, session: StoredAppSession | None, stale: str | None = None) -> bool:
        return (
            session is not None
            and session.token != stale
            and session.expires_at - self.renew_margin > self._clock()
        )

    def _store(self, operation: str, *args: Any) -> Any:
        """Call the store; a broken cache degrades to a per-process session, never to an error."""
        try:
            return getattr(self.store, operation)(*args)
        except Exception as exc:  # any cache backend failure
            log(logger, logging.WARNING, "App session store %s failed: %s", operation, redact(exc))
            return None

    def _shared(self, stale: str | None) -> StoredAppSession:
        """Read the shared token, or renew it under the store's lock (one renewer at a time)."""
        key = self.key
        deadline = time.monotonic() + self.lock_wait
        while True:
            stored = self._store("get", key)
            if self._fresh(stored, stale):
                return stored  # type: ignore[no-any-return]
            owner = self._store("acquire_lock", key, self.lock_wait + 30.0)
            if owner:
                try:
                    stored = self._store("get", key)
                    if self._fresh(stored, stale):
                        return stored  # type: ignore[no-any-return]
                    return self._renew()
                finally:
                    self._store("release_lock", key, owner)
            if time.monotonic() >= deadline:
                log(
                    logger,
                    logging.WARNING,
                    "Timed out waiting for another process to renew the app session",
                )
                return self._renew()
            time.sleep(0.05)

    def _renew(self) -> StoredAppSession:
        session = self._create()
        expires_at = (
            session.expires_at.timestamp()
            if session.expires_at
            else self._clock() + DEFAULT_SESSION_TTL
        )
        stored = StoredAppSession(token=session.token, expires_at=expires_at)
        self._store("set", self.key, stored)
        log(logger, logging.INFO, "Created the application session (%s)", self.key)
        return stored
