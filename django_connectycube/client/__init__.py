"""The ConnectyCube HTTP client: the only code that speaks to ConnectyCube.

It imports no model and reads Django settings only in ``ConnectyCubeClient.from_settings()``,
so it can be lifted out as a standalone ConnectyCube library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import ConnectyCubeClient, UserClient, default_app_session_store
    from .errors import (
        APIError,
        AuthenticationError,
        BadRequest,
        ConfigurationError,
        ConnectyCubeError,
        NotFound,
        PermissionDenied,
        RateLimited,
        ServerError,
        SessionExpired,
        TransportError,
        V1ApiDisabled,
        ValidationError,
    )
    from .redaction import RedactingFilter, redact, register_secret
    from .stores import (
        AppSessionStore,
        DjangoCacheAppSessionStore,
        MemoryAppSessionStore,
        StoredAppSession,
    )
    from .transport import RetryBudget, RetryPolicy, parse_retry_after
    from .types import Blob, BlobObjectAccess, Page, Session, User, UserSession, iterate_pages

_EXPORTS: dict[str, str] = {
    "APIError": "errors",
    "AppSessionStore": "stores",
    "AuthenticationError": "errors",
    "BadRequest": "errors",
    "Blob": "types",
    "BlobObjectAccess": "types",
    "ConfigurationError": "errors",
    "ConnectyCubeClient": "api",
    "ConnectyCubeError": "errors",
    "DjangoCacheAppSessionStore": "stores",
    "MemoryAppSessionStore": "stores",
    "NotFound": "errors",
    "Page": "types",
    "PermissionDenied": "errors",
    "RateLimited": "errors",
    "RedactingFilter": "redaction",
    "RetryBudget": "transport",
    "RetryPolicy": "transport",
    "ServerError": "errors",
    "Session": "types",
    "SessionExpired": "errors",
    "StoredAppSession": "stores",
    "TransportError": "errors",
    "User": "types",
    "UserClient": "api",
    "UserSession": "types",
    "V1ApiDisabled": "errors",
    "ValidationError": "errors",
    "default_app_session_store": "api",
    "iterate_pages": "types",
    "parse_retry_after": "transport",
    "redact": "redaction",
    "register_secret": "redaction",
}


def __getattr__(name: str) -> Any:
    """Import on first use, so ``client.signing`` (all the emulator needs) pulls in nothing else."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "APIError",
    "AppSessionStore",
    "AuthenticationError",
    "BadRequest",
    "Blob",
    "BlobObjectAccess",
    "ConfigurationError",
    "ConnectyCubeClient",
    "ConnectyCubeError",
    "DjangoCacheAppSessionStore",
    "MemoryAppSessionStore",
    "NotFound",
    "Page",
    "PermissionDenied",
    "RateLimited",
    "RedactingFilter",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "Session",
    "SessionExpired",
    "StoredAppSession",
    "TransportError",
    "User",
    "UserClient",
    "UserSession",
    "V1ApiDisabled",
    "ValidationError",
    "default_app_session_store",
    "iterate_pages",
    "parse_retry_after",
    "redact",
    "register_secret",
]
