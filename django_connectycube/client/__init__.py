"""The ConnectyCube HTTP client: the only code that speaks to ConnectyCube.

It imports no model and reads Django settings only in ``ConnectyCubeClient.from_settings()``,
so it can be lifted out as a standalone ConnectyCube library.
"""

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
    "ValidationError",
    "default_app_session_store",
    "iterate_pages",
    "parse_retry_after",
    "redact",
    "register_secret",
]
