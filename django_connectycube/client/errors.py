"""The exception tree: every failure of a ConnectyCube call is one typed exception.

Shape borrowed from django-anymail: the base error carries the HTTP status, the server's parsed
``errors`` and the response; transport failures are also instances of the original ``requests``
exception, so code that already catches ``requests.Timeout`` keeps working.

::

    ConnectyCubeError
    ├── APIError                      any non-2xx answer (status, errors, response)
    │   ├── BadRequest                400
    │   ├── AuthenticationError       401
    │   │   └── SessionExpired        401 "Required session does not exist"
    │   ├── PermissionDenied          403
    │   ├── NotFound                  404
    │   ├── ValidationError           422 (field_errors)
    │   │   └── IdentityProviderRefused   a refused CIdP login (422, or 200 with ``errors``)
    │   ├── RateLimited               429 (retry_after seconds)
    │   ├── ServerError               5xx
    │   └── MalformedResponse         a 2xx answer whose body is not the promised shape
    └── TransportError                no answer: connection failure or timeout
    ConfigurationError                (a ValueError, deliberately outside the tree)

``ConfigurationError`` is not a ``ConnectyCubeError`` so that a retry loop catching remote
failures never swallows a broken configuration (the same choice anymail made). It is a plain
``ValueError`` here, so the client needs no framework; the Django app raises its own subclass,
which is also Django's ``ImproperlyConfigured``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .redaction import redact

if TYPE_CHECKING:
    import requests

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequest",
    "ConfigurationError",
    "ConnectyCubeError",
    "IdentityProviderRefused",
    "MalformedResponse",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "SessionExpired",
    "TransportError",
    "ValidationError",
    "error_for_status",
    "error_messages",
    "field_errors",
    "transport_error",
]

#: The server's message for an unknown or expired token (the one answer that means "renew").
SESSION_MISSING_MESSAGE = "Required session does not exist"

#: The start of the server's 403 message when the application has the v1 user look-ups off.
V1_DISABLED_MESSAGE = "Users retrieving forbidden"

#: The dashboard switches that refuse v2 look-ups with the same text.
USERS_SWITCHES = (
    'Overview → Permissions → "Allow to retrieve a list of users via API" and '
    '"Allow to retrieve other user\'s info"'
)


class ConfigurationError(ValueError):
    """The client cannot be built, or cannot make a call, with the arguments it was given; the
    message names what to fix."""


class ConnectyCubeError(Exception):
    """Base of every error raised by a ConnectyCube call.

    Attributes: ``status`` (int or None), ``errors`` (the server's ``errors`` value, parsed),
    ``response`` (the ``requests.Response`` or None), ``method`` and ``path`` of the request.
    ``str()`` gives the server's message, redacted of tokens and secrets.
    """

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        errors: Any = None,
        response: requests.Response | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors
        self.response = response
        self.method = method
        self.path = path

    @property
    def messages(self) -> list[str]:
        """The server's messages as strings (``"login has already been taken."``)."""
        return error_messages(self.errors)

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """Per-field messages when the server answered ``{"errors": {"field": [...]}}``."""
        return field_errors(self.errors)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable for Celery result backends; the live response object is dropped.
        state = {k: v for k, v in self.__dict__.items() if k != "response"}
        return (_rebuild_error, (_error_base(type(self)), self.message), state)


class APIError(ConnectyCubeError):
    """ConnectyCube answered with a status other than 200/201/202."""


class BadRequest(APIError):
    """400: the request was malformed."""


class AuthenticationError(APIError):
    """401: the token is unknown or expired, or the credentials are wrong."""


class SessionExpired(AuthenticationError):
    """401 ``Required session does not exist``: the token must be replaced by a new session."""


class PermissionDenied(APIError):
    """403: the session may not do this (e.g. a write with an application session)."""


class NotFound(APIError):
    """404: no such user, blob or session."""


class ValidationError(APIError):
    """422: the server rejected the fields; ``field_errors`` maps each field to its messages."""


class IdentityProviderRefused(ValidationError):
    """ConnectyCube refused a login through the Custom Identity Provider: the verifier refused
    the token, its answer mapped to no ``uid``, or the request lacked a field.

    The real service has answered such refusals with 422 and also with 200 and an ``errors``
    body, so ``status`` may be either; ``messages`` are the server's words, which quote what the
    verifier said."""


class RateLimited(APIError):
    """429: too many requests; ``retry_after`` is the server's ``Retry-After`` in seconds."""

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: ConnectyCube failed; safe requests were already retried before this was raised."""


class MalformedResponse(APIError):
    """A success answer whose body lacks what the protocol promises (a session without a
    token, a user whose id is not a number): ConnectyCube or something between misbehaved."""


class TransportError(ConnectyCubeError):
    """No answer: connection refused or reset, DNS failure, or a timeout.

    Raised instances are also instances of the original ``requests`` exception class
    (``requests.ConnectionError``, ``requests.ReadTimeout``, ...). ``maybe_processed`` tells
    whether the server might have acted on the request (a read timeout) or provably did not
    (connection refused, connect timeout).
    """

    maybe_processed: bool = True


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    422: ValidationError,
    429: RateLimited,
}

_transport_classes: dict[type[BaseException], type[TransportError]] = {}


def _error_base(cls: type[ConnectyCubeError]) -> type[ConnectyCubeError]:
    """The named class of an error (dynamic transport classes pickle as ``TransportError``)."""
    if cls in _transport_classes.values():
        return TransportError
    return cls


def _rebuild_error(
    cls: type[ConnectyCubeError], message: str, state: dict[str, Any] | None = None
) -> ConnectyCubeError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.message = message
    error.response = None
    if state:
        error.__dict__.update(state)
    return error


def error_messages(errors: Any) -> list[str]:
    """Flatten ``{"errors": ...}`` (a list, a dict of lists, or a string) into readable strings."""
    if errors is None:
        return []
    if isinstance(errors, str):
        return [errors]
    if isinstance(errors, dict):
        out: list[str] = []
        for name, value in errors.items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                out.append(str(item) if name == "base" else f"{name} {item}")
        return out
    if isinstance(errors, list):
        return [str(item) for item in errors]
    return [str(errors)]


def field_errors(errors: Any) -> dict[str, list[str]]:
    """The per-field part of ``errors`` (empty when the server sent a plain list)."""
    if not isinstance(errors, dict):
        return {}
    return {
        str(name): [str(v) for v in (value if isinstance(value, list) else [value])]
        for name, value in errors.items()
    }


def error_for_status(
    status: int,
    errors: Any,
    *,
    response: requests.Response | None = None,
    method: str | None = None,
    path: str | None = None,
    retry_after: float | None = None,
    fallback_text: str = "",
) -> APIError:
    """Build the typed exception for a non-success answer."""
    messages = error_messages(errors)
    text = "; ".join(messages) if messages else (fallback_text.strip()[:200] or "no details")
    where = f"{method} {path}" if method and path else "ConnectyCube"
    message = f"{text} (HTTP {status} from {where})"
    kwargs: dict[str, Any] = {
        "status": status,
        "errors": errors,
        "response": response,
        "method": method,
        "path": path,
    }
    if status == 429:
        return RateLimited(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    if status == 401 and any(SESSION_MISSING_MESSAGE.lower() in m.lower() for m in messages):
        return SessionExpired(message, **kwargs)
    # Documented text; its status is only inferred to be 403, so any refusal carrying it counts.
    users_forbidden = any(V1_DISABLED_MESSAGE.lower() in m.lower() for m in messages)
    if 400 <= status < 500 and users_forbidden:
        # Every look-up of the client is a v2 one, refused with this text by these switches.
        message += f". Check {USERS_SWITCHES} in the ConnectyCube dashboard."
        return PermissionDenied(message, **kwargs)
    cls = _BY_STATUS.get(status, APIError)
    return cls(message, **kwargs)


def transport_error(
    exc: BaseException,
    *,
    method: str | None = None,
    path: str | None = None,
    maybe_processed: bool = True,
    hint: str = "",
) -> TransportError:
    """A ``TransportError`` that is also an instance of ``type(exc)`` (anymail's trick)."""
    original = type(exc)
    cls = _transport_classes.get(original)
    if cls is None:
        try:
            cls = type("TransportError", (TransportError, original), {"__module__": __name__})
        except TypeError:  # an exception type that cannot be mixed in: fall back to the base
            cls = TransportError
        _transport_classes[original] = cls
    where = f"{method} {path}" if method and path else "ConnectyCube"
    message = f"{original.__name__} during {where}: {exc}"
    if hint:
        message = f"{message}. {hint}"
    error = cls.__new__(cls)
    ConnectyCubeError.__init__(error, message, method=method, path=path)
    error.maybe_processed = maybe_processed
    # requests exceptions expect these attributes.
    error.request = getattr(exc, "request", None)  # type: ignore[attr-defined]
    return error
