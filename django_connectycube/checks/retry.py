"""System checks for the failure policy's settings: retries, the breaker, leases, rate limit.

- ``connectycube.E002`` (shared with :mod:`.checks`): a value of the wrong type.
- ``connectycube.W007``: ``LEASE_SECONDS`` is too short for one slow request: the lease is
  renewed before every HTTP attempt (see :mod:`.lease`), so what must fit between two renewals
  is one attempt (connect and read timeouts) plus the longest wait before the next one.

The breaker and the rate limit keep their counts in ``CACHE``: whether it names a cache is
``E002`` and whether every process shares it ``connectycube.W012``, both in
:mod:`.security`, with the other protections that need it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
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
        values = {name: get(name) for name in _NUMBERS + _INTEGERS}
    except ConfigurationError:
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    for name in _NUMBERS:
        if not _number(values[name]):
            messages.append(_e002(name, f"must be a non-negative number, got {values[name]!r}."))
    for name in _INTEGERS:
        if not _integer(values[name]):
            messages.append(_e002(name, f"must be a non-negative integer, got {values[name]!r}."))
    if not messages:
        messages.extend(_check_lease())
    messages.extend(_check_rate_limit())
    return messages


def _check_rate_limit() -> list[CheckMessage]:
    """The limit's value (its counts live in ``CACHE``, checked with the other shared state)."""
    try:
        check_rate_limit(app_settings.get("RATE_LIMIT"))
    except ConfigurationError as exc:
        return [Error(str(exc), id="connectycube.E002")]
    return []


_NUMBERS = ("RETRY_HORIZON", "CIRCUIT_BREAKER_COOLDOWN")
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
