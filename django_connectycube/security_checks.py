"""System checks for the security settings: the login guard, throttles, CIdP tokens, secrets.

Ids continue :mod:`.checks` (same stable-id promise):

- ``connectycube.E002``: a security setting has a value of the wrong type.
- ``connectycube.W004``: ``PASSWORD_SECRETS`` is not set, so ConnectyCube passwords are derived
  from ``SECRET_KEY``.
- ``connectycube.W005``: ``TOKEN_KEYS`` is not set, so stored tokens are encrypted with a key
  derived from ``SECRET_KEY``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from .checks import _e002
from .conf import DEFAULTS, ConfigurationError, app_settings

CHECK_TAG = "connectycube"

_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)\w*$")


def _integer(minimum: int) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    return valid


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _cache_alias(value: Any) -> bool:
    return isinstance(value, str) and value in getattr(settings, "CACHES", {})


def _optional_name(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value.strip()))


def _optional_bool(value: Any) -> bool:
    return value is None or isinstance(value, bool)


#: name → (is the value usable, what it must be)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "NUM_PROXIES": (_integer(0), "a non-negative integer"),
    "LOGIN_FAILURE_LIMIT": (_integer(1), "a positive integer"),
    "LOGIN_FAILURE_IP_LIMIT": (_integer(1), "a positive integer"),
    "LOGIN_FAILURE_WINDOW": (_integer(1), "a positive integer (seconds)"),
    "LOGIN_FAILURE_DELAY": (_positive_number, "a positive number (seconds)"),
    "LOGIN_FAILURE_MAX_DELAY": (_positive_number, "a positive number (seconds)"),
    "LOGIN_FAILURE_CACHE": (_cache_alias, "an alias in settings.CACHES"),
    "LOGIN_DEVICE_COOKIE": (_optional_name, "a cookie name, or None to turn known devices off"),
    "LOGIN_DEVICE_COOKIE_AGE": (_integer(1), "a positive integer (seconds)"),
    "API_CONTACT_LOOKUPS": (_optional_bool, "True, False or None"),
    "PASSWORD_RESET_MIN_SECONDS": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
        "a non-negative number (seconds)",
    ),
    "CIDP_CLOCK_SKEW": (_integer(0), "a non-negative integer (seconds)"),
    "CIDP_REPLAY_CACHE": (_cache_alias, "an alias in settings.CACHES"),
}


def _readable() -> bool:
    """Whether ``CONNECTYCUBE`` can be read (``check_settings`` reports it when it cannot)."""
    try:
        app_settings.reload()
        app_settings.unknown_keys()
    except ConfigurationError:
        return False
    return True


@register(Tags.security, CHECK_TAG)
def check_security_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Type checks for the login guard, the throttles and the CIdP verifier."""
    if not _readable():
        return []
    messages: list[CheckMessage] = []
    for name, (valid, expected) in RULES.items():
        value = app_settings.get(name)
        if not valid(value):
            messages.append(_e002(name, f"must be {expected}, got {value!r}."))
    delay, cap = (
        app_settings.get("LOGIN_FAILURE_DELAY"),
        app_settings.get("LOGIN_FAILURE_MAX_DELAY"),
    )
    if _positive_number(delay) and _positive_number(cap) and cap < delay:
        messages.append(
            _e002("LOGIN_FAILURE_MAX_DELAY", f"({cap}) is below LOGIN_FAILURE_DELAY ({delay}).")
        )
    messages.extend(_check_rates())
    return messages


def _check_rates() -> list[CheckMessage]:
    rates = app_settings.get("API_THROTTLE_RATES")
    if rates is None:
        return []
    if not isinstance(rates, dict):
        return [_e002("API_THROTTLE_RATES", f"must be a dict of scope → rate, got {rates!r}.")]
    messages: list[CheckMessage] = []
    known = set(DEFAULTS["API_THROTTLE_RATES"])
    for scope, rate in rates.items():
        if scope not in known:
            messages.append(
                _e002(
                    "API_THROTTLE_RATES",
                    f"has an unknown scope {scope!r}.",
                    f"Known scopes: {', '.join(sorted(known))}.",
                )
            )
        elif rate is not None and not (isinstance(rate, str) and _RATE.match(rate)):
            messages.append(
                _e002(
                    "API_THROTTLE_RATES",
                    f"[{scope!r}] must be a DRF rate such as '10/hour', or None, got {rate!r}.",
                )
            )
    return messages


@register(Tags.security, CHECK_TAG)
def check_secrets(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when ConnectyCube passwords or token encryption hang on ``SECRET_KEY``.

    Rotating ``SECRET_KEY`` then silently changes every derived password (logins survive only
    while the old key sits in ``SECRET_KEY_FALLBACKS``), and ``password_version`` cannot tell an
    old key from the new one. Own secrets make a rotation of either a deliberate step.
    """
    if not _readable():
        return []
    messages: list[CheckMessage] = []
    if not app_settings.get("PASSWORD_SECRETS"):
        messages.append(
            Warning(
                'CONNECTYCUBE["PASSWORD_SECRETS"] is not set: ConnectyCube passwords are derived '
                "from SECRET_KEY, so rotating SECRET_KEY changes all of them.",
                hint="Set PASSWORD_SECRETS = {1: <the current SECRET_KEY value>} (nothing changes "
                "for existing users), then rotate by adding version 2 and running "
                "manage.py connectycube_rederive_passwords.",
                id="connectycube.W004",
            )
        )
    if not app_settings.get("TOKEN_KEYS"):
        messages.append(
            Warning(
                'CONNECTYCUBE["TOKEN_KEYS"] is not set: stored session tokens are encrypted with '
                "a key derived from SECRET_KEY.",
                hint="Set TOKEN_KEYS to your own Fernet keys (Fernet.generate_key()), newest "
                "first; rotate with manage.py connectycube_rotate_keys.",
                id="connectycube.W005",
            )
        )
    return messages
