"""The ConnectyCube HTTP client: the only code that speaks to ConnectyCube.

A library beside the app, not part of it: it imports neither Django nor any other module of
``django_connectycube`` (only ``requests``), so it can be lifted out as a standalone ConnectyCube
library. The Django glue, a client built from ``settings.CONNECTYCUBE`` and the application
session shared through Django's cache, lives on the app side (``django_connectycube.
client_factory`` and ``django_connectycube.app_session_cache``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import ConnectyCubeClient, UserClient
    from .errors import (
        APIError,
        AuthenticationError,
        BadRequest,
        ConfigurationError,
        ConnectyCubeError,
        IdentityProviderRefused,
        NotFound,
        PermissionDenied,
        RateLimited,
        ServerError,
        SessionExpired,
        TransportError,
        ValidationError,
    )
    from .redaction import RedactingFilter, redact, register_secret
    from .stores import AppSessionStore, MemoryAppSessionStore, StoredAppSession
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
    "IdentityProviderRefused": "errors",
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
    "ValidationError": "errors",
    "iterate_pages": "types",
    "parse_retry_after": "transport",
    "redact": "redaction",
    "register_secret": "redaction",
}


#: Django glue that moved to the app, by old name: (module, name there). Reached only through a
#: deprecated name, so the client itself never imports the app or Django.
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
    "IdentityProviderRefused",
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
    "ValidationError",
    "iterate_pages",
    "parse_retry_after",
    "redact",
    "register_secret",
]
