"""System checks of the security settings: the login guard, throttles, CIdP tokens (``E002``),
secrets hanging on ``SECRET_KEY`` (``W004``, ``W005``), and protections every process must share
(``W012``, only with ``DEBUG`` off: a development server is one process, where local memory is
right, and a warning on every start would teach people to skip it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from django_connectycube.checks.configuration import (
    CACHE_ALIAS,
    CHECK_TAG,
    INTEGER,
    NUMBER,
    POSITIVE_INTEGER,
    POSITIVE_NUMBER,
    Rule,
    e002,
    readable,
    reverses,
    type_errors,
)
from django_connectycube.conf import DEFAULTS, app_settings

_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)\w*$")

RULES: dict[str, Rule] = {
    "NUM_PROXIES": INTEGER,
    "LOGIN_FAILURE_LIMIT": POSITIVE_INTEGER,
    "LOGIN_FAILURE_IP_LIMIT": POSITIVE_INTEGER,
    "LOGIN_FAILURE_WINDOW": POSITIVE_INTEGER,
    "LOGIN_FAILURE_DELAY": POSITIVE_NUMBER,
    "LOGIN_FAILURE_MAX_DELAY": POSITIVE_NUMBER,
    "LOGIN_FAILURE_CACHE": CACHE_ALIAS,
    "LOGIN_DEVICE_COOKIE": (
        lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
        "a cookie name, or None to turn known devices off",
    ),
    "LOGIN_DEVICE_COOKIE_AGE": POSITIVE_INTEGER,
    "API_CONTACT_LOOKUPS": (lambda v: v is None or isinstance(v, bool), "True, False or None"),
    "PASSWORD_RESET_MIN_SECONDS": NUMBER,
    "CIDP_CLOCK_SKEW": INTEGER,
    "CIDP_REPLAY_CACHE": CACHE_ALIAS,
}


@register(Tags.security, CHECK_TAG)
def check_security_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Type checks for the login guard, the throttles and the CIdP verifier."""
    if not readable():
        return []
    messages = type_errors(RULES)
    delay, cap = (
        app_settings.get("LOGIN_FAILURE_DELAY"),
        app_settings.get("LOGIN_FAILURE_MAX_DELAY"),
    )
    positive = POSITIVE_NUMBER[0]
    if positive(delay) and positive(cap) and cap < delay:
        messages.append(
            e002("LOGIN_FAILURE_MAX_DELAY", f"({cap}) is below LOGIN_FAILURE_DELAY ({delay}).")
        )
    messages.extend(_check_rates())
    return messages


def _check_rates() -> list[CheckMessage]:
    rates = app_settings.get("API_THROTTLE_RATES")
    if rates is None:
        return []
    if not isinstance(rates, dict):
        return [e002("API_THROTTLE_RATES", f"must be a dict of scope → rate, got {rates!r}.")]
    messages: list[CheckMessage] = []
    known = set(DEFAULTS["API_THROTTLE_RATES"])
    for scope, rate in rates.items():
        if scope not in known:
            messages.append(
                e002(
                    "API_THROTTLE_RATES",
                    f"has an unknown scope {scope!r}.",
                    f"Known scopes: {', '.join(sorted(known))}.",
                )
            )
        elif rate is not None and not (isinstance(rate, str) and _RATE.match(rate)):
            messages.append(
                e002(
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
    if not readable():
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


@dataclass(frozen=True)
class _Protection:
    """Something that must see what every other process did, and what a per-process cache does
    to it."""

    what: str
    setting: str  # the CONNECTYCUBE key naming its cache alias, or the key that turns it on
    alone: str  # what goes wrong when each process keeps its own
    atomic: frozenset[str]  # the cache operations it needs to be atomic across processes
    in_use: Callable[[], bool]
    alias: Callable[[], Any]


def _api_mounted() -> bool:
    return reverses("connectycube:login")


def _throttled() -> bool:
    rates = app_settings.get("API_THROTTLE_RATES")
    if not isinstance(rates, dict):
        rates = {}  # None, or a wrong type that E002 reports
    merged = {**DEFAULTS["API_THROTTLE_RATES"], **rates}  # a project gives only what it changes
    return _api_mounted() and any(rate is not None for rate in merged.values())


def _setting(name: str) -> Callable[[], Any]:
    return lambda: app_settings.get(name)


_BOTH = frozenset({"add", "incr"})
PROTECTIONS = (
    _Protection(
        "the login failure counters",
        "LOGIN_FAILURE_CACHE",
        "each process counts guesses alone, so every process allows the whole limit",
        _BOTH,
        _api_mounted,
        _setting("LOGIN_FAILURE_CACHE"),
    ),
    _Protection(
        "single use of CIdP tokens",
        "CIDP_REPLAY_CACHE",
        "a used token is accepted again by every other process",
        frozenset({"add"}),
        lambda: app_settings.get("AUTH_MODE") == "cidp",
        _setting("CIDP_REPLAY_CACHE"),
    ),
    _Protection(
        "the circuit breaker",
        "CIRCUIT_BREAKER_CACHE",
        "each worker counts failures and probes alone",
        _BOTH,
        lambda: bool(app_settings.get("CIRCUIT_BREAKER_THRESHOLD")),
        _setting("CIRCUIT_BREAKER_CACHE"),
    ),
    _Protection(
        "the rate limit",
        "RATE_LIMIT_CACHE",
        "each process gets the whole limit",
        frozenset({"incr"}),
        lambda: app_settings.get("RATE_LIMIT") is not None,
        _setting("RATE_LIMIT_CACHE"),
    ),
    _Protection(
        "the application session token",
        "APP_SESSION_CACHE",
        "each process creates its own session",
        frozenset(),
        lambda: True,
        _setting("APP_SESSION_CACHE"),
    ),
    _Protection(
        "the API's throttles",
        "API_THROTTLE_RATES",
        "each process throttles alone",  # DRF keeps them in the default cache
        frozenset(),
        _throttled,
        lambda: "default",
    ),
)

#: Backends that keep entries per process; Dummy keeps none at all.
_PER_PROCESS = ("LocMemCache", "DummyCache")
#: Backends shared on one machine (file) or by every machine (database) whose listed
#: operations read then write, so two processes can both pass.
_NOT_ATOMIC = {"DatabaseCache": frozenset({"incr"}), "FileBasedCache": _BOTH}


def _problem(protection: _Protection, backend: str) -> str | None:
    if backend in _PER_PROCESS:
        return f"per process: {protection.alone}"
    racy = protection.atomic & _NOT_ATOMIC.get(backend, frozenset())
    if racy:
        return f"{' and '.join(sorted(racy))} not atomic: concurrent requests can all pass"
    return None


@register(Tags.security, CHECK_TAG)
def check_shared_caches(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when a protection that needs every process's counts keeps them per process."""
    if settings.DEBUG or not readable():
        return []
    caches = getattr(settings, "CACHES", {})
    lines = []
    for protection in PROTECTIONS:
        alias = protection.alias()
        if not isinstance(alias, str) or alias not in caches or not protection.in_use():
            continue  # an unknown alias is E002's business
        backend = str(caches[alias].get("BACKEND", "")).rsplit(".", 1)[-1]
        problem = _problem(protection, backend)
        if problem is not None:
            lines.append(
                f"{protection.what} ({protection.setting}, cache {alias!r}, {backend}: {problem})"
            )
    if not lines:
        return []
    return [
        Warning(
            "Protections that only work when every process shares them are kept in a cache "
            "that does not: " + "; ".join(lines) + ".",
            hint="Point these caches at one every process reaches with atomic add and incr "
            "(Redis or Memcached in CACHES). A site served by one process only may add "
            "connectycube.W012 to SILENCED_SYSTEM_CHECKS.",
            id="connectycube.W012",
        )
    ]
