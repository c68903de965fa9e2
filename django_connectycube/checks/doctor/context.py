"""What the doctor's checks share: the settings, one client with its own application session,
and the Celery app the library publishes with.

The client is built for diagnosis, not for traffic: no retries, a short timeout, and a private
in-memory session store, so the doctor neither waits through backoffs nor touches the token the
running site shares through its cache.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from django_connectycube.client import ConnectyCubeClient, ConnectyCubeError, Session
from django_connectycube.client.stores import MemoryAppSessionStore, StoredAppSession
from django_connectycube.conf import ConfigurationError, app_settings
from django_connectycube.sync.connection import build_client

__all__ = ["DoctorContext", "setting_path"]


def setting_path(name: str) -> str:
    """How a reader finds the setting to fix: ``CONNECTYCUBE["AUTH_KEY"]``."""
    return f'CONNECTYCUBE["{name}"]'


class DoctorContext:
    """State handed from check to check: the credentials check creates the session the later
    remote checks use, and records why ConnectyCube cannot be used so they skip instead of each
    waiting for the same timeout."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        celery_app: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self._celery_app = celery_app
        self._client: ConnectyCubeClient | None = None
        self._built = False
        self._store = MemoryAppSessionStore()
        #: Why no client could be built (a setting is missing or malformed).
        self.client_error = ""
        #: The application session the credentials check created (None until it succeeded).
        self.session: Session | None = None
        #: Why ConnectyCube cannot be used; set by the credentials check, read by later checks.
        self.remote_problem = ""
        #: True when ConnectyCube gave no answer at all (later checks would only time out too).
        self.unreachable = False

    def setting(self, name: str) -> Any:
        """A ``CONNECTYCUBE`` value without the required-key check (None for unknown keys)."""
        try:
            return app_settings.get(name)
        except AttributeError:
            return None

    @property
    def api_url(self) -> str:
        return str(self.setting("API_URL") or "")

    @property
    def client(self) -> ConnectyCubeClient | None:
        """The diagnostic client, or None (then ``client_error`` says why)."""
        if not self._built:
            self._built = True
            try:
                self._client = build_client(
                    retries=0, timeout=self.timeout, app_session_store=self._store
                )
            except ConfigurationError as exc:
                self.client_error = str(exc)
        return self._client

    def adopt_session(self, session: Session) -> None:
        """Make ``session`` the one the client uses for application-scoped calls."""
        self.session = session
        client = self.client
        assert client is not None  # the session came from it
        expires = session.expires_at.timestamp() if session.expires_at else self.clock() + 3600
        self._store.set(
            client.app_session_key, StoredAppSession(token=session.token, expires_at=expires)
        )

    @property
    def celery_app(self) -> Any:
        """The Celery app the project created (Celery's nameless fallback when it made none)."""
        if self._celery_app is None:
            from django_connectycube.checks.celery import configured_celery_app
            from django_connectycube.sync.enqueue import sweep_dirty

            self._celery_app = configured_celery_app() or sweep_dirty.app
        return self._celery_app

    def close(self) -> None:
        """End the session the doctor created and close its connections."""
        client, self._client = self._client, None
        if client is None:
            return
        if self.session is not None:
            with contextlib.suppress(ConnectyCubeError):
                client.destroy_session(self.session.token)
            self.session = None
        client.close()
