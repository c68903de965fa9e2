"""System checks for the failure policy's settings: retries, the breaker, leases, rate limit.

- ``connectycube.E002`` (shared with :mod:`.checks`): a value of the wrong type.
- ``connectycube.W007``: ``LEASE_SECONDS`` is too short for one slow request: the lease is
  renewed before every HTTP attempt (see :mod:`.lease`), so what must fit between two renewals
  is one attempt (connect and read timeouts) plus the longest wait before the next one.

Whether the breaker's and the rate limit's caches are shared by every process is
``connectycube.W012`` (:mod:`.security_checks`), with the other protections that need it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_connectycube.checks.configuration import CHECK_TAG
from django_connectycube.client.transport import RetryPolicy
from django_connectycube.conf import ConfigurationError, app_settings
from django_connectycube.sync.lease import RENEW_FRACTION
from django_connectycube.sync.ratelimit import check_rate_limit


def _e002(name: str, problem: str) -> Error:
    return Error(f'CONNECTYCUBE["{name}"] {problem}', id="connectycube.E002")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@register(Tags.compatibility, CHECK_TAG)
def check_retry_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Types of the retry and breaker settings, and whether the lease outlasts one request."""
    try:
        get = app_settings.get
        values = {name: get(name) for name in _NUMBERS + _INTEGERS + ("TASK_MAX_ATTEMPTS",)}
        cache = get("CIRCUIT_BREAKER_CACHE")
    except ConfigurationError:
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    for name in _NUMBERS:
        if not _number(values[name]):
            messages.append(_e002(name, f"must be a non-negative number, got {values[name]!r}."))
    for name in _INTEGERS:
        if not _integer(values[name]):
            messages.append(_e002(name, f"must be a non-negative integer, got {values[name]!r}."))
    attempts = values["TASK_MAX_ATTEMPTS"]
    if attempts is not None and not (_integer(attempts) and attempts > 0):
        messages.append(
            _e002(
                "TASK_MAX_ATTEMPTS",
                f"must be a positive integer or None (give up by RETRY_HORIZON alone), "
                f"got {attempts!r}.",
            )
        )
    if cache not in getattr(settings, "CACHES", {}):
        messages.append(
            _e002("CIRCUIT_BREAKER_CACHE", f"names {cache!r}, which is not in settings.CACHES.")
        )
    if not messages:
        messages.extend(_check_lease())
    messages.extend(_check_rate_limit())
    return messages


def _check_rate_limit() -> list[CheckMessage]:
    """The limit's value and its cache alias (whether that cache is shared: ``W012``)."""
    try:
        check_rate_limit(app_settings.get("RATE_LIMIT"))
    except ConfigurationError as exc:
        return [Error(str(exc), id="connectycube.E002")]
    alias = app_settings.get("RATE_LIMIT_CACHE")
    if app_settings.get("RATE_LIMIT") is not None and alias not in getattr(settings, "CACHES", {}):
        return [_e002("RATE_LIMIT_CACHE", f"names {alias!r}, which is not in settings.CACHES.")]
    return []


_NUMBERS = (
    "RETRY_HORIZON",
    "RETRY_COUNTDOWN_MAX",
    "CIRCUIT_BREAKER_COOLDOWN",
    "CIRCUIT_BREAKER_COOLDOWN_MAX",
)
_INTEGERS = ("CIRCUIT_BREAKER_THRESHOLD",)


def longest_gap() -> float:
    """The longest time between two lease renewals: one HTTP attempt plus the wait after it."""
    timeout = app_settings.get("TIMEOUT")
    connect, read = timeout if isinstance(timeout, list | tuple) else (timeout, timeout)
    wait = max(float(app_settings.get("MAX_RETRY_WAIT")), RetryPolicy().backoff_max)
    return float(connect) + float(read) + wait


def _check_lease() -> list[CheckMessage]:
    try:
        gap = longest_gap()
        lease = float(app_settings.get("LEASE_SECONDS"))
    except (TypeError, ValueError):
        return []  # a wrong type, reported by check_settings
    needed = math.ceil(gap / (1 - RENEW_FRACTION))
    if lease >= needed:
        return []
    return [
        Warning(
            f'CONNECTYCUBE["LEASE_SECONDS"] ({lease:g} s) is shorter than one slow request '
            f"needs ({needed} s: connect and read timeouts plus the longest wait before a "
            "retry, with the lease renewed after a third of it). A lease that runs out lets a "
            "second worker push the same user at the same time.",
            hint=f"Set LEASE_SECONDS to at least {needed}, or lower TIMEOUT/MAX_RETRY_WAIT.",
            id="connectycube.W007",
        )
    ]
