"""System checks of the failure policy's settings: retries, the breaker, leases, rate limit.

``connectycube.W007``: ``LEASE_SECONDS`` is too short for one slow request. The lease is renewed
before every HTTP attempt (:mod:`django_connectycube.sync.lease`), so what must fit between two
renewals is one attempt (connect and read timeouts) plus the longest wait before the next one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_connectycube.checks.configuration import (
    CHECK_TAG,
    INTEGER,
    NUMBER,
    Rule,
    readable,
    type_errors,
)
from django_connectycube.client.transport import RetryPolicy
from django_connectycube.conf import ConfigurationError, app_settings
from django_connectycube.sync.lease import RENEW_FRACTION
from django_connectycube.sync.ratelimit import check_rate_limit

RULES: dict[str, Rule] = {
    "RETRY_HORIZON": NUMBER,
    "CIRCUIT_BREAKER_COOLDOWN": NUMBER,
    "CIRCUIT_BREAKER_THRESHOLD": INTEGER,
}


@register(Tags.compatibility, CHECK_TAG)
def check_retry_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Types of the retry and breaker settings, and whether the lease outlasts one request."""
    if not readable():
        return []  # reported by check_settings
    messages = type_errors(RULES) or _check_lease()
    messages.extend(_check_rate_limit())
    return messages


def _check_rate_limit() -> list[CheckMessage]:
    """The limit's value (its counts live in ``CACHE``, checked with the other shared state)."""
    try:
        check_rate_limit(app_settings.get("RATE_LIMIT"))
    except ConfigurationError as exc:
        return [Error(str(exc), id="connectycube.E002")]
    return []


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
