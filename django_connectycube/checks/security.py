"""System checks of the security settings: the login guard, throttles, CIdP tokens (``E002``),
secrets hanging on ``SECRET_KEY`` (``W004``, ``W005``), and ``W012``: ``CACHE``, which holds what
every process must see alike (login counters, single use of CIdP tokens, the breaker, the rate
limit, the application token), or the ``default`` cache holding the API's throttles, is a
per-process cache, or one whose ``add``/``incr`` a protection in use relies on is not atomic.
Only with ``DEBUG`` off: a development server is one process, where local memory is right, and a
warning on every start would teach people to skip it.
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
    POSITIVE_INTEGER,
    Rule,
    e002,
    readable,
    reverses,
    type_errors,
)
from django_connectycube.conf import DEFAULTS, app_settings

_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)\w*$")

RULES: dict[str, Rule] = {
    "CACHE": CACHE_ALIAS,
    "LOGIN_FAILURE_LIMIT": POSITIVE_INTEGER,
    "LOGIN_FAILURE_IP_LIMIT": POSITIVE_INTEGER,
    "API_CONTACT_FIELDS": (
        lambda v: v in ("private", "searchable", "public"),
        '"private", "searchable" or "public"',
    ),
}


@register(Tags.security, CHECK_TAG)
def check_security_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Type checks for the login guard, the throttles and the CIdP verifier."""
    if not readable():
        return []
    messages = type_errors(RULES)
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
    alone: str  # what goes wrong when each process keeps its own
    atomic: frozenset[str]  # the cache operations it needs to be atomic across processes
    in_use: Callable[[], bool]


def _api_mounted() -> bool:
    return reverses("connectycube:login")


def _throttled() -> bool:
    rates = app_settings.get("API_THROTTLE_RATES")
    if not isinstance(rates, dict):
        rates = {}  # None, or a wrong type that E002 reports
    merged = {**DEFAULTS["API_THROTTLE_RATES"], **rates}  # a project gives only what it changes
    return _api_mounted() and any(rate is not None for rate in merged.values())


_BOTH = frozenset({"add", "incr"})
#: What ``CONNECTYCUBE["CACHE"]`` holds for every process.
SHARED = (
    _Protection(
        "the login failure counters",
        "each process counts guesses alone, so every process allows the whole limit",
        _BOTH,
        _api_mounted,
    ),
    _Protection(
        "single use of CIdP tokens",
        "a used token is accepted again by every other process",
        frozenset({"add"}),
        lambda: app_settings.get("AUTH_MODE") == "cidp",
    ),
    _Protection(
        "the circuit breaker",
        "each worker counts failures and probes alone",
        _BOTH,
        lambda: bool(app_settings.get("CIRCUIT_BREAKER_THRESHOLD")),
    ),
    _Protection(
        "the rate limit",
        "each process gets the whole limit",
        frozenset({"incr"}),
        lambda: app_settings.get("RATE_LIMIT") is not None,
    ),
    _Protection(
        "the application session token",
        "each process creates its own session",
        frozenset(),
        lambda: True,
    ),
)
#: DRF keeps its throttles in the ``default`` cache, whatever ``CACHE`` says.
THROTTLES = _Protection(
    "the API's throttles", "each process throttles alone", frozenset(), _throttled
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


def _problems(alias: Any, protections: Sequence[_Protection]) -> list[str]:
    caches = getattr(settings, "CACHES", {})
    if not isinstance(alias, str) or alias not in caches:
        return []  # an unknown alias is E002's business
    backend = str(caches[alias].get("BACKEND", "")).rsplit(".", 1)[-1]
    found = []
    for protection in protections:
        problem = _problem(protection, backend) if protection.in_use() else None
        if problem is not None:
            found.append(f"{protection.what} (cache {alias!r}, {backend}: {problem})")
    return found


@register(Tags.security, CHECK_TAG)
def check_shared_caches(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when ``CACHE`` (or DRF's ``default``, for its throttles) keeps per process what
    every process must share."""
    if settings.DEBUG or not readable():
        return []
    lines = _problems(app_settings.get("CACHE"), SHARED) + _problems("default", [THROTTLES])
    if not lines:
        return []
    return [
        Warning(
            "Protections that only work when every process shares them are kept in a cache "
            "that does not: " + "; ".join(lines) + ".",
            hint='Point CONNECTYCUBE["CACHE"] (and the default cache, for DRF\'s throttles) at a '
            "cache every process reaches with atomic add and incr (Redis or Memcached in "
            "CACHES). A site served by one process only may add connectycube.W012 to "
            "SILENCED_SYSTEM_CHECKS.",
            id="connectycube.W012",
        )
    ]
