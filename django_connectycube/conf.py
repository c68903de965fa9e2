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
    "REQUIRED",
    "ConfigurationError",
    "ConnectyCubeSettings",
    "app_settings",
]

SETTINGS_NAME = "CONNECTYCUBE"

#: Every supported key with its default. The README's settings table mirrors this dict.
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
    "APP_SESSION_CACHE": "default",  # Django cache alias that shares the application token
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
    "RETRY_HORIZON": 3 * 24 * 3600,  # seconds a row keeps retrying before it is marked failed
    "TASK_MAX_ATTEMPTS": None,  # optional cap on failed attempts as well (None: time alone)
    "TASK_BACKOFF_BASE": 2.0,  # seconds; the n-th retry waits up to base * 2**(n-1) (full jitter)
    "TASK_BACKOFF_MAX": 3600.0,  # seconds; the longest wait between two attempts
    "RETRY_COUNTDOWN_MAX": 60.0,  # seconds; longer waits are a due time on the row, not a
    #                               broker countdown (keep below the broker's visibility timeout)
    "CIRCUIT_BREAKER_THRESHOLD": 5,  # remote failures in a row that pause pushes (0: off)
    "CIRCUIT_BREAKER_COOLDOWN": 30.0,  # seconds paused before one probe; doubles per failed probe
    "CIRCUIT_BREAKER_COOLDOWN_MAX": 60.0,  # seconds; the longest pause between probes
    "CIRCUIT_BREAKER_CACHE": "default",  # Django cache alias sharing the breaker (use a shared one)
    # Requests per second to ConnectyCube for this application, shared by every worker
    # through the cache RATE_LIMIT_CACHE names (use a shared one, e.g. Redis). None: no limit.
    "RATE_LIMIT": None,
    "RATE_LIMIT_CACHE": "default",
    "SWEEP_AFTER": 300,  # seconds an enqueued push may take before the sweep re-enqueues it
    "LEASE_SECONDS": 120,  # how long one worker owns a user between two renewals of its lease
    "TASK_QUEUE": None,  # Celery queue for the sync tasks (None: the default queue)
    # When a committed change is handed to the broker: "background" (a per-process thread
    # publishes it, so the save does not wait for the broker) or "immediate" (inside the
    # on-commit callback). Eager Celery (task_always_eager) always publishes immediately.
    "ENQUEUE": "background",
    # Per-user sessions.
    "TOKEN_KEYS": None,  # Fernet keys, newest first; None derives them from SECRET_KEY(+fallbacks)
    "SESSION_RENEW_MARGIN": 300,  # seconds before expiry at which a stored token is replaced
    "SYNC_ON_LOGIN_TIMEOUT": 10.0,  # seconds a login may spend pushing a not-yet-synced user
    # How users log in to ConnectyCube: "password" (derived passwords) or "cidp" (this site is
    # the Custom Identity Provider: a short-lived signed token, checked at our verify endpoint).
    "AUTH_MODE": "password",
    "CIDP_TOKEN_MAX_AGE": 60,  # seconds a signed CIdP login token is accepted by the verifier
    "CIDP_CLOCK_SKEW": 5,  # seconds a CIdP token may be dated in the future (servers' clocks)
    "CIDP_REPLAY_CACHE": "default",  # Django cache alias remembering used CIdP tokens (shared)
    # REST API (django_connectycube.api).
    "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],  # user look-ups
    "API_THROTTLE_CLASSES": [],  # extra DRF throttle classes for every API view (dotted paths)
    # Requests per period of the built-in throttles, by scope; None turns one off.
    "API_THROTTLE_RATES": {
        "password_reset": "10/hour",  # reset requests per client address
        "password_reset_email": "3/hour",  # reset requests per e-mail address
        "lookup": "120/minute",  # user look-ups per requesting user
    },
    "API_EXPOSE_CONTACT_FIELDS": False,  # True: e-mail/phone in every profile, not only one's own
    "API_CONTACT_LOOKUPS": None,  # users/?email= and ?phone=; None: as API_EXPOSE_CONTACT_FIELDS
    "NUM_PROXIES": 0,  # reverse proxies in front of the site that append to X-Forwarded-For
    "LOGIN_FAILURE_LIMIT": 5,  # wrong passwords per account answered at once; then delays
    "LOGIN_FAILURE_DELAY": 1,  # seconds of the first delay; each further attempt doubles it
    "LOGIN_FAILURE_MAX_DELAY": 900,  # seconds; the delay never grows beyond this
    "LOGIN_FAILURE_IP_LIMIT": 50,  # failed logins per client address within the window
    "LOGIN_FAILURE_WINDOW": 900,  # seconds without a failure after which counts are forgotten
    "LOGIN_FAILURE_CACHE": "default",  # Django cache alias for the counters (shared: Redis)
    "LOGIN_DEVICE_COOKIE": "connectycube_device",  # known-device cookie name; None: off
    "LOGIN_DEVICE_COOKIE_AGE": 365 * 24 * 3600,  # seconds a known-device cookie stays valid
    "UNAVAILABLE_RETRY_AFTER": 5,  # Retry-After seconds on a 503 when ConnectyCube gives none
    "PASSWORD_RESET_MIN_SECONDS": 0.3,  # every reset answer takes this long (known/unknown alike)
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
