"""One lazy accessor over ``settings.CONNECTYCUBE``.

Settings are read on attribute access, never at import, and the cache is dropped whenever Django
reports a changed setting, so ``override_settings(CONNECTYCUBE=...)`` works in tests. A missing
required value raises an error naming the exact key to add instead of a ``KeyError`` from deep
inside the client.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from django_connectycube.client.errors import ConfigurationError as _ClientConfigurationError

__all__ = [
    "DEFAULTS",
    "REMOVED",
    "REQUIRED",
    "ConfigurationError",
    "ConnectyCubeSettings",
    "app_settings",
]

SETTINGS_NAME = "CONNECTYCUBE"

#: Every supported key with its default. The README's settings table mirrors this dict; what a
#: site has no reason to change is a constant next to the code that uses it.
DEFAULTS: dict[str, Any] = {
    # Credentials of the ConnectyCube application (dashboard → Overview).
    "API_URL": "https://api.connectycube.com",
    "APPLICATION_ID": None,
    "AUTH_KEY": None,
    "AUTH_SECRET": None,
    # Administration API key (dashboard → Overview, Advanced plan and up). Optional: when set,
    # remote deletes use DELETE /admin/user/{id}, which needs no session of the user.
    "ADMIN_API_KEY": None,
    # HTTP behaviour of the client.
    "TIMEOUT": (5.0, 30.0),  # (connect, read) seconds, or one number for both
    "RETRIES": 3,  # retries after the first attempt, for requests that are safe to repeat
    "MAX_RETRY_WAIT": 30.0,  # longest Retry-After the client sleeps through; longer raises
    # The Django cache alias for everything every process must share: the application token,
    # the circuit breaker, the rate limit, the login failure counters and used CIdP tokens.
    # Production needs one that all processes reach with atomic add/incr (Redis, Memcached).
    "CACHE": "default",
    # Mirroring users.
    "SYNC_ENABLED": True,  # False: signals record nothing and enqueue nothing
    "USER_FIELDS": "django_connectycube.sync.mapping.default_user_fields",
    "AVATAR_FIELD": None,  # a File/ImageField name on the user model, or a callable(user)
    "PASSWORD_SECRETS": None,  # {version: secret}; None means {1: SECRET_KEY}
    # Names this site in the external ids it mints ("<prefix>-<random>"): give each site that
    # shares a ConnectyCube application (staging, production) its own.
    "EXTERNAL_ID_PREFIX": "dj",
    # Failures: transient ones retry with capped exponential backoff until RETRY_HORIZON has
    # passed since the first failure; permanent ones (and the horizon) mark the row failed.
    # The longest wait between two attempts grows with the horizon (see sync.policy).
    "RETRY_HORIZON": 3 * 24 * 3600,  # seconds a row keeps retrying before it is marked failed
    "CIRCUIT_BREAKER_THRESHOLD": 5,  # remote failures in a row that pause pushes (0: off)
    "CIRCUIT_BREAKER_COOLDOWN": 30.0,  # seconds paused before one probe; doubles once at most
    # Requests per second to ConnectyCube for this application, shared by every worker
    # through CACHE. None: no limit.
    "RATE_LIMIT": None,
    "SWEEP_AFTER": 300,  # seconds an enqueued push may take before the sweep re-enqueues it
    "LEASE_SECONDS": 120,  # how long one worker owns a user between two renewals of its lease
    "TASK_QUEUE": None,  # Celery queue for the sync tasks (None: the default queue)
    # When a committed change is handed to the broker: "background" (a per-process thread
    # publishes it, so the save does not wait for the broker) or "immediate" (inside the
    # on-commit callback). Eager Celery (task_always_eager) always publishes immediately.
    "ENQUEUE": "background",
    # Per-user sessions.
    "TOKEN_KEYS": None,  # Fernet keys, newest first; None derives them from SECRET_KEY(+fallbacks)
    "SYNC_ON_LOGIN_TIMEOUT": 10.0,  # seconds a login may spend pushing a not-yet-synced user
    # How users log in to ConnectyCube: "password" (derived passwords) or "cidp" (this site is
    # the Custom Identity Provider: a short-lived signed token, checked at our verify endpoint).
    "AUTH_MODE": "password",
    # REST API (django_connectycube.api). DRF's own DEFAULT_THROTTLE_CLASSES and NUM_PROXIES
    # apply to it as to every DRF view.
    "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],  # user look-ups
    # Requests per period of the built-in throttles, by scope; None turns one off.
    "API_THROTTLE_RATES": {
        "password_reset": "10/hour",  # reset requests per client address
        "password_reset_email": "3/hour",  # reset requests per e-mail address
        "lookup": "120/minute",  # user look-ups per requesting user
    },
    # Other users' e-mail and phone: "private" (only one's own profile shows them, no look-ups
    # by them), "searchable" (users/?email= and ?phone= find users; profiles still hide them)
    # or "public" (shown in every profile and searchable).
    "API_CONTACT_FIELDS": "private",
    "LOGIN_FAILURE_LIMIT": 5,  # wrong passwords per account answered at once; then delays
    "LOGIN_FAILURE_IP_LIMIT": 50,  # failed logins per client address within the window
    "PASSWORD_RESET_OPTIONS": {},  # keyword arguments for Django's PasswordResetForm.save()
    # Firebase phone login through ConnectyCube.
    "FIREBASE_PROJECT_ID": None,  # when set, the only accepted project (and the default one)
    # Where a Firebase-verified phone finds its local user: a dotted callable(phone) -> user or
    # None, or a user model field that only ever holds verified numbers (say so below). None:
    # Firebase phone login is off.
    "FIREBASE_PHONE_LOOKUP": None,
    "FIREBASE_PHONE_FIELD_VERIFIED": False,  # True: vouch that FIREBASE_PHONE_LOOKUP's field is
    #                                          only ever set to numbers the user has proven
    "FIREBASE_CREATE_USERS": False,  # True: an unknown verified phone gets a new local user
}

_SHARED = "now CACHE, one alias for everything shared"
_FIXED = "a fixed value now (nothing a site needs to tune)"

#: Keys earlier versions knew, with what took their place: a project that still sets one is
#: told so by ``connectycube.W003`` instead of having it ignored in silence.
REMOVED: dict[str, str] = {
    "APP_SESSION_CACHE": _SHARED,
    "CIRCUIT_BREAKER_CACHE": _SHARED,
    "RATE_LIMIT_CACHE": _SHARED,
    "CIDP_REPLAY_CACHE": _SHARED,
    "LOGIN_FAILURE_CACHE": _SHARED,
    "API_EXPOSE_CONTACT_FIELDS": 'now API_CONTACT_FIELDS = "public"',
    "API_CONTACT_LOOKUPS": 'now API_CONTACT_FIELDS = "searchable" (or "public")',
    "API_THROTTLE_CLASSES": 'now REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"], which the API applies',
    "NUM_PROXIES": 'now REST_FRAMEWORK["NUM_PROXIES"], shared with DRF\'s own throttles',
    "TASK_BACKOFF_MAX": "now follows RETRY_HORIZON (a 72nd of it)",
    "TASK_BACKOFF_BASE": _FIXED,
    "RETRY_COUNTDOWN_MAX": _FIXED + "; keep the broker's visibility timeout above a minute",
    "TASK_MAX_ATTEMPTS": "removed: RETRY_HORIZON alone bounds the retries",
    "CIRCUIT_BREAKER_COOLDOWN_MAX": "now twice CIRCUIT_BREAKER_COOLDOWN",
    "SESSION_RENEW_MARGIN": _FIXED,
    "CIDP_TOKEN_MAX_AGE": _FIXED,
    "CIDP_CLOCK_SKEW": _FIXED,
    "LOGIN_FAILURE_DELAY": _FIXED,
    "LOGIN_FAILURE_MAX_DELAY": _FIXED,
    "LOGIN_FAILURE_WINDOW": _FIXED,
    "LOGIN_DEVICE_COOKIE": _FIXED,
    "LOGIN_DEVICE_COOKIE_AGE": _FIXED,
    "UNAVAILABLE_RETRY_AFTER": _FIXED,
    "PASSWORD_RESET_MIN_SECONDS": (
        "removed: the reset e-mail is looked up and sent after the answer, so every answer "
        "already takes the same time"
    ),
}

#: Keys that have no usable default: the app cannot talk to ConnectyCube without them.
REQUIRED = frozenset({"APPLICATION_ID", "AUTH_KEY", "AUTH_SECRET"})

#: Keys whose string values are dotted paths, imported on access.
IMPORT_STRINGS: frozenset[str] = frozenset({"USER_FIELDS"})


class ConfigurationError(ImproperlyConfigured, _ClientConfigurationError):
    """A setting the app cannot work with; the message names the key to fix.

    Django's ``ImproperlyConfigured`` (what system checks and Django itself report), and also
    the client's own ``ConfigurationError``, so one ``except`` catches either.
    """


def _setting_path(name: str) -> str:
    return f'{SETTINGS_NAME}["{name}"]'


class ConnectyCubeSettings:
    """Attribute access to ``settings.CONNECTYCUBE`` layered over :data:`DEFAULTS`."""

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self._defaults = defaults if defaults is not None else DEFAULTS
        self._cache: dict[str, Any] = {}
        self._user_settings: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        """The project's ``CONNECTYCUBE`` dict, validated to be a mapping."""
        if self._user_settings is None:
            from django.conf import settings

            value = getattr(settings, SETTINGS_NAME, {})
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigurationError(
                    f"settings.{SETTINGS_NAME} must be a dict, got {type(value).__name__}."
                )
            self._user_settings = value
        return self._user_settings

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._defaults:
            raise AttributeError(f"Unknown ConnectyCube setting: {name!r}")
        if name in self._cache:
            return self._cache[name]
        value = self.user_settings.get(name, self._defaults[name])
        if name in REQUIRED and value in (None, ""):
            raise ConfigurationError(
                f"{_setting_path(name)} is not set. Add it to your Django settings, e.g. "
                f'CONNECTYCUBE = {{"{name}": ...}} (find it in the ConnectyCube dashboard '
                "under your application's Overview)."
            )
        if name in IMPORT_STRINGS and isinstance(value, str):
            try:
                value = import_string(value)
            except ImportError as exc:
                raise ConfigurationError(
                    f"{_setting_path(name)} = {value!r} could not be imported: {exc}"
                ) from exc
        self._cache[name] = value
        return value

    def get(self, name: str) -> Any:
        """The configured value without the required-key check (for system checks)."""
        if name not in self._defaults:
            raise AttributeError(f"Unknown ConnectyCube setting: {name!r}")
        return self.user_settings.get(name, self._defaults[name])

    def unknown_keys(self) -> list[str]:
        """Keys in the project's dict that the app does not know (usually typos)."""
        return sorted(set(self.user_settings) - set(self._defaults))

    def reload(self) -> None:
        """Forget everything read so far; the next access reads Django settings again."""
        self._cache.clear()
        self._user_settings = None


app_settings = ConnectyCubeSettings()


def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        app_settings.reload()


setting_changed.connect(_reload_on_change, dispatch_uid="django_connectycube.conf.reload")
