"""Failed-login counters and lockout, kept in Django's cache so every process shares them.

Counters are per account (the submitted username, whether or not it exists, so a locked-out
unknown name looks exactly like a locked-out real one) and per client IP. Each counter is created
with ``cache.add`` (atomic "create if absent", which also fixes the window's start) and bumped
with ``cache.incr`` (atomic on Redis and Memcached), so concurrent failures are all counted.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest

from ..conf import app_settings

__all__ = ["LoginGuard", "client_ip"]

_PREFIX = "connectycube:login-failures"


def client_ip(request: HttpRequest) -> str:
    """The client address as Django sees it (``REMOTE_ADDR``; put a proxy-aware middleware
    such as ``django-xff`` in front if the site runs behind a proxy)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _digest(value: str) -> str:
    # Hashed: cache keys must be short and safe, and usernames must not sit in the cache.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class _Counter:
    key: str
    limit: int


class LoginGuard:
    """Counts failed logins and says when an account or an address must wait."""

    def __init__(self, request: HttpRequest, account: str | None) -> None:
        self.window = int(app_settings.LOGIN_FAILURE_WINDOW)
        self.cache: BaseCache = caches[app_settings.LOGIN_FAILURE_CACHE]
        self.counters: list[_Counter] = [
            _Counter(f"{_PREFIX}:ip:{_digest(client_ip(request))}", self._limit("IP"))
        ]
        if account is not None:
            normalized = account.strip().casefold()
            self.counters.append(
                _Counter(f"{_PREFIX}:account:{_digest(normalized)}", self._limit(""))
            )

    @staticmethod
    def _limit(kind: str) -> int:
        name = f"LOGIN_FAILURE_{kind}_LIMIT" if kind else "LOGIN_FAILURE_LIMIT"
        return int(getattr(app_settings, name))

    def retry_after(self) -> int | None:
        """Seconds until a locked counter's window ends, or ``None`` when logins may proceed."""
        keys = [c.key for c in self.counters] + [c.key + ":since" for c in self.counters]
        values: dict[str, Any] = self.cache.get_many(keys)
        waits = []
        for counter in self.counters:
            if int(values.get(counter.key) or 0) >= counter.limit:
                since = float(values.get(counter.key + ":since") or time.time())
                waits.append(max(1, math.ceil(since + self.window - time.time())))
        return max(waits) if waits else None

    def record_failure(self) -> None:
        """Count one failure on every counter (atomically)."""
        now = time.time()
        for counter in self.counters:
            self.cache.add(counter.key + ":since", now, self.window)
            self.cache.add(counter.key, 0, self.window)
            try:
                self.cache.incr(counter.key)
            except ValueError:  # expired between add and incr: start a new window
                self.cache.add(counter.key, 1, self.window)

    def reset_account(self) -> None:
        """Forget an account's failures after a successful login (the IP counter stays)."""
        for counter in self.counters[1:]:
            self.cache.delete_many([counter.key, counter.key + ":since"])
