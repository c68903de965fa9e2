"""The process-wide ConnectyCube client built from settings.

One client per process shares one connection pool; the application session it uses is shared
across processes through Django's cache. Rebuilt whenever ``CONNECTYCUBE`` changes (tests).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed

from .client import ConnectyCubeClient

__all__ = ["get_client", "reset_client"]

_lock = threading.Lock()
_client: ConnectyCubeClient | None = None


def get_client() -> ConnectyCubeClient:
    """The shared client (created on first use from ``settings.CONNECTYCUBE``)."""
    global _client
    client = _client
    if client is None:
        with _lock:
            if _client is None:
                _client = ConnectyCubeClient.from_settings()
            client = _client
    return client


def reset_client() -> None:
    """Drop the shared client; the next :func:`get_client` builds a new one."""
    global _client
    with _lock:
        old, _client = _client, None
    if old is not None:
        old.close()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CONNECTYCUBE", "CACHES"):
        reset_client()


setting_changed.connect(_on_setting_changed, dispatch_uid="django_connectycube.remote.reset")
