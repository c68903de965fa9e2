"""The app's ConnectyCube clients, built from ``settings.CONNECTYCUBE`` in this one place.

* :func:`shared_client`: the process-wide client. One per process shares one connection pool;
  its application session is shared across processes through the ``CACHE`` cache.
* :func:`login_client`: the same application with its patience cut to ``SYNC_ON_LOGIN_TIMEOUT``,
  for the push a login cannot do without.
* :func:`build_client`: a new client, for callers that need their own (the doctor, a test).

Both shared clients are rebuilt whenever ``CONNECTYCUBE`` or ``CACHES`` changes (tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.core.signals import setting_changed

from django_connectycube import __version__
from django_connectycube.client import ConnectyCubeClient
from django_connectycube.client.errors import ConfigurationError as ClientConfigurationError
from django_connectycube.conf import ConfigurationError, app_settings
from django_connectycube.sync.app_session_cache import DjangoCacheAppSessionStore
from django_connectycube.sync.ratelimit import throttle_from_settings

__all__ = [
    "USER_AGENT",
    "app_session_store",
    "build_client",
    "login_client",
    "reset_clients",
    "shared_client",
]

#: What the app's clients tell ConnectyCube they are.
USER_AGENT = f"django-connectycube/{__version__}"

_lock = threading.Lock()
_clients: dict[str, ConnectyCubeClient] = {}


def app_session_store() -> DjangoCacheAppSessionStore:
    """The store every client of the site shares its application session through."""
    return DjangoCacheAppSessionStore(app_settings.CACHE)


def build_client(
    *, client_class: type[ConnectyCubeClient] = ConnectyCubeClient, **overrides: Any
) -> ConnectyCubeClient:
    """A new client from ``settings.CONNECTYCUBE``; keyword arguments override settings.

    A setting the client refuses raises the app's :class:`~.conf.ConfigurationError` (Django's
    ``ImproperlyConfigured``), so system checks and the doctor report it like any other.
    """
    kwargs: dict[str, Any] = {
        "timeout": app_settings.TIMEOUT,
        "retries": app_settings.RETRIES,
        "max_retry_wait": app_settings.MAX_RETRY_WAIT,
        "admin_api_key": app_settings.ADMIN_API_KEY,
        "user_agent": USER_AGENT,
    }
    if "app_session_store" not in overrides:
        kwargs["app_session_store"] = app_session_store()
    if "throttle" not in overrides:
        patience = float(overrides.get("max_retry_wait", kwargs["max_retry_wait"]))
        kwargs["throttle"] = throttle_from_settings(max_wait=patience)
    kwargs.update(overrides)
    credentials = {
        "api_url": kwargs.pop("api_url", None) or app_settings.API_URL,
        "application_id": kwargs.pop("application_id", None) or app_settings.APPLICATION_ID,
        "auth_key": kwargs.pop("auth_key", None) or app_settings.AUTH_KEY,
        "auth_secret": kwargs.pop("auth_secret", None) or app_settings.AUTH_SECRET,
    }
    try:
        return client_class(**credentials, **kwargs)
    except ClientConfigurationError as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"settings.CONNECTYCUBE: {exc}") from exc


def _login_overrides() -> dict[str, Any]:
    limit = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
    timeout = app_settings.TIMEOUT
    connect, read = timeout if isinstance(timeout, list | tuple) else (timeout, timeout)
    return {
        "timeout": (min(float(connect), limit), min(float(read), limit)),
        "retries": min(int(app_settings.RETRIES), 1),
        "max_retry_wait": min(float(app_settings.MAX_RETRY_WAIT), limit / 2),
    }


def _cached(name: str, build: Callable[[], ConnectyCubeClient]) -> ConnectyCubeClient:
    client = _clients.get(name)
    if client is None:
        with _lock:
            client = _clients.get(name)
            if client is None:
                client = _clients[name] = build()
    return client


def shared_client() -> ConnectyCubeClient:
    """The process-wide client (created on first use)."""
    return _cached("shared", build_client)


def login_client() -> ConnectyCubeClient:
    """A client whose timeouts and retries fit in ``SYNC_ON_LOGIN_TIMEOUT`` (created on first
    use): a login never hangs on a slow ConnectyCube for the full task timeouts. It shares the
    application session with every other client through the cache; only its patience differs."""
    return _cached("login", lambda: build_client(**_login_overrides()))


def reset_clients() -> None:
    """Drop the shared clients; the next call of :func:`shared_client` or :func:`login_client`
    builds a new one."""
    with _lock:
        old = list(_clients.values())
        _clients.clear()
    for client in old:
        client.close()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CONNECTYCUBE", "CACHES"):
        reset_clients()


setting_changed.connect(_on_setting_changed, dispatch_uid="django_connectycube.sync.connection")
