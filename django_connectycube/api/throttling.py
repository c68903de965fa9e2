"""DRF throttles of the API, with defaults from ``API_THROTTLE_RATES``.

A throttle answers 429 with ``Retry-After`` before the view does any work. The defaults keep a
script from mailing an address over and over through ``password-reset/`` (per address and per
client address) and from walking the user directory through the look-ups (per user). Each rate
is overridable by name in ``CONNECTYCUBE["API_THROTTLE_RATES"]``; ``None`` turns one off.

Wrong passwords are not throttled here but by the login guard (:mod:`.lockout`), which counts
failures rather than requests; :class:`LoginGuard` and :func:`client_ip` stay importable from here.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from django_connectycube.api.client_ip import client_ip
from django_connectycube.api.lockout import LoginGuard
from django_connectycube.conf import DEFAULTS, app_settings

__all__ = [
    "LoginGuard",
    "LookupThrottle",
    "PasswordResetAddressThrottle",
    "PasswordResetIPThrottle",
    "RateFromSettingsThrottle",
    "client_ip",
]


class RateFromSettingsThrottle(SimpleRateThrottle):
    """A rate throttle whose rate is ``API_THROTTLE_RATES[scope]`` (``None``: no limit)."""

    scope = ""

    def get_rate(self) -> str | None:
        rates = {**DEFAULTS["API_THROTTLE_RATES"], **(app_settings.API_THROTTLE_RATES or {})}
        rate = rates.get(self.scope)
        return str(rate) if rate else None

    def get_ident(self, request: Request) -> str:
        return client_ip(request._request)

    def key_for(self, kind: str, value: str) -> str:
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]
        return f"connectycube:throttle:{self.scope}:{kind}:{digest}"


class PasswordResetIPThrottle(RateFromSettingsThrottle):
    """Reset requests per client address (``password_reset``)."""

    scope = "password_reset"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.key_for("ip", self.get_ident(request))


class PasswordResetAddressThrottle(RateFromSettingsThrottle):
    """Reset requests per e-mail address, whoever sends them (``password_reset_email``)."""

    scope = "password_reset_email"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        data: Any = request.data
        email = data.get("email") if hasattr(data, "get") else None
        if not isinstance(email, str) or not email.strip():
            return None  # the serializer refuses it; nothing to count
        return self.key_for("email", email.strip().casefold())


class LookupThrottle(RateFromSettingsThrottle):
    """User look-ups per requesting user, or per client address when anonymous (``lookup``)."""

    scope = "lookup"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return self.key_for("user", str(user.pk))
        return self.key_for("ip", self.get_ident(request))
