"""The login guard: how many password guesses an account, an address and a device get.

The policy follows the OWASP Authentication Cheat Sheet ("Account Lockout" and "Slow Down Online
Guessing Attacks with Device Cookies"); the README's security section says it in plain words.

* **Reserve, then check.** An attempt first takes its place in the counters with an atomic
  ``incr`` and only then may check a password; a failure keeps the place, a refusal or a success
  gives it back. So parallel guesses cannot all slip through before the first failure is counted.
* **Per account: progressive delay, not a lock.** ``LOGIN_FAILURE_LIMIT`` wrong passwords are
  answered at once; from then on each attempt must win a gate (``cache.add``, so exactly one
  attempt wins) that stays shut for ``LOGIN_FAILURE_DELAY`` seconds, doubling with every further
  attempt up to ``LOGIN_FAILURE_MAX_DELAY``. Refused attempts do not extend anything, so a
  stranger can make the rightful user wait at most the current delay, never lock them out. The
  count is forgotten ``LOGIN_FAILURE_WINDOW`` seconds after the last delay ends. Unknown account
  names get the same treatment as real ones, so the answers reveal nothing.
* **Per client address**: ``LOGIN_FAILURE_IP_LIMIT`` failures within ``LOGIN_FAILURE_WINDOW``
  seconds, the address taken behind ``NUM_PROXIES`` trusted proxies (:mod:`.client_ip`).
* **Known devices.** A successful login sets a signed cookie naming the account. A login for that
  account presenting it skips the account's delay and the address limit, so an attack on the
  account (or from a shared address) does not keep its owner out; the device has its own budget
  of ``LOGIN_FAILURE_LIMIT`` failures, after which it is treated like any stranger.

Counters live in the ``LOGIN_FAILURE_CACHE`` cache, which every process must share (Redis); keys
hold hashes, never account names or addresses.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest, HttpResponseBase
from django.utils.crypto import get_random_string

from ..conf import app_settings
from .client_ip import client_ip

__all__ = ["DEFAULT_DEVICE_COOKIE", "LoginGuard", "delay_after"]

_PREFIX = "connectycube:login"
DEVICE_SALT = "django_connectycube.login.device"
DEFAULT_DEVICE_COOKIE = "connectycube_device"
#: Doubling stops here; the cap is reached long before (2**30 seconds is 34 years).
_MAX_DOUBLINGS = 30


def _digest(value: str) -> str:
    # Hashed: cache keys must be short and safe, and names or addresses must not sit in the cache.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def _account_digest(account: str) -> str:
    return _digest(account.strip().casefold())


def delay_after(gated_attempts: int) -> int:
    """Seconds the gate stays shut after the n-th (0-based) attempt beyond the free ones."""
    base = float(app_settings.LOGIN_FAILURE_DELAY)
    cap = float(app_settings.LOGIN_FAILURE_MAX_DELAY)
    return max(1, math.ceil(min(cap, base * 2 ** min(gated_attempts, _MAX_DOUBLINGS))))


class _Counter:
    """One atomic counter in the cache with an expiry refreshed on every failure."""

    def __init__(self, cache: BaseCache, key: str) -> None:
        self.cache = cache
        self.key = key

    def reserve(self, ttl: int) -> int:
        """Count one attempt now and return the count including it."""
        for _ in range(3):
            self.cache.add(self.key, 0, ttl)
            try:
                return int(self.cache.incr(self.key))
            except ValueError:  # expired between add and incr
                continue
        return 1

    def release(self) -> None:
        """Give back a reservation (the attempt was refused, or it succeeded)."""
        with contextlib.suppress(ValueError):  # already expired: nothing to give back
            self.cache.decr(self.key)

    def keep(self, ttl: int) -> None:
        """A failure: keep the reservation and remember it for ``ttl`` more seconds."""
        self.cache.touch(self.key, ttl)

    def clear(self) -> None:
        self.cache.delete(self.key)


class LoginGuard:
    """One login attempt's passage through the counters: :meth:`reserve` before the password
    check, then exactly one of :meth:`failed` or :meth:`succeeded`."""

    def __init__(self, request: HttpRequest, account: str | None) -> None:
        self.request = request
        self.account = account
        self.cache: BaseCache = caches[app_settings.LOGIN_FAILURE_CACHE]
        self.window = int(app_settings.LOGIN_FAILURE_WINDOW)
        self.limit = int(app_settings.LOGIN_FAILURE_LIMIT)
        self.ip = _Counter(self.cache, f"{_PREFIX}:ip:{_digest(client_ip(request))}")
        self.account_counter: _Counter | None = None
        self.gate_key = ""
        if account is not None:
            digest = _account_digest(account)
            self.account_counter = _Counter(self.cache, f"{_PREFIX}:account:{digest}")
            self.gate_key = f"{_PREFIX}:gate:{digest}"
        self.device: _Counter | None = None
        self._held: list[_Counter] = []
        self._ttl = self.window
        self._gate_won = False

    # ---- reservation ---------------------------------------------------------------------

    def reserve(self) -> int | None:
        """Take this attempt's place; ``None`` when it may check a password, else the seconds
        to wait (nothing is held then)."""
        device = self._known_device()
        if device is not None:
            if device.reserve(self.window) <= self.limit:
                self.device = device
                self._held = [device]
                return None
            device.release()  # this device used up its own budget: a stranger from now on
        wait = self._reserve_ip()
        if wait is not None:
            return wait
        if self.account_counter is None:
            return None
        count = self.account_counter.reserve(self.window)
        self._held.append(self.account_counter)
        if count < self.limit:
            return None
        delay = delay_after(count - self.limit)
        until = time.time() + delay
        if self.cache.add(self.gate_key, until, delay):
            self._gate_won = True
            self._ttl = delay + self.window
            self.account_counter.keep(self._ttl)
            return None
        self._give_back()
        return self._remaining(self.cache.get(self.gate_key))

    def _reserve_ip(self) -> int | None:
        limit = int(app_settings.LOGIN_FAILURE_IP_LIMIT)
        if self.ip.reserve(self.window) <= limit:
            self._held = [self.ip]
            return None
        self.ip.release()
        return self._remaining(self.cache.get(self.ip.key + ":until"))

    @staticmethod
    def _remaining(until: Any) -> int:
        try:
            return max(1, math.ceil(float(until) - time.time()))
        except (TypeError, ValueError):  # the entry expired meanwhile
            return 1

    def _give_back(self) -> None:
        for counter in self._held:
            counter.release()
        self._held = []

    # ---- outcome -------------------------------------------------------------------------

    def failed(self) -> None:
        """A wrong password: every reservation stays, as a failure."""
        for counter in self._held:
            ttl = self._ttl if counter is self.account_counter else self.window
            counter.keep(ttl)
        if self.ip in self._held:
            self.cache.set(self.ip.key + ":until", time.time() + self.window, self.window)
        self._held = []

    def cancel(self) -> None:
        """The check could not be made (an error): the attempt counts for nothing."""
        self._give_back()
        if self._gate_won:
            self.cache.delete(self.gate_key)

    def succeeded(self) -> None:
        """The right password: the address's reservation is given back, and the account's (or
        the device's) failures are forgotten."""
        if self.ip in self._held:
            self.ip.release()
        if self.device is not None:
            self.device.clear()
        elif self.account_counter is not None and self.account_counter in self._held:
            self.account_counter.clear()
            self.cache.delete(self.gate_key)
        self._held = []

    # ---- known devices -------------------------------------------------------------------

    @staticmethod
    def cookie_name() -> str | None:
        name = app_settings.LOGIN_DEVICE_COOKIE
        return str(name) if name else None

    def _known_device(self) -> _Counter | None:
        name = self.cookie_name()
        if not name or self.account is None:
            return None
        value = self.request.COOKIES.get(name)
        if not value:
            return None
        try:
            payload = signing.loads(
                value, salt=DEVICE_SALT, max_age=int(app_settings.LOGIN_DEVICE_COOKIE_AGE)
            )
        except signing.BadSignature:
            return None
        if not isinstance(payload, dict) or payload.get("a") != _account_digest(self.account):
            return None
        nonce = payload.get("n")
        if not isinstance(nonce, str) or not nonce:
            return None
        return _Counter(self.cache, f"{_PREFIX}:device:{_digest(nonce)}")

    def remember_device(self, response: HttpResponseBase) -> None:
        """Mark the client of a successful login as a known device of this account."""
        name = self.cookie_name()
        if not name or self.account is None:
            return
        value = signing.dumps(
            {"a": _account_digest(self.account), "n": get_random_string(32)}, salt=DEVICE_SALT
        )
        response.set_cookie(
            name,
            value,
            max_age=int(app_settings.LOGIN_DEVICE_COOKIE_AGE),
            path=self.request.path,
            # Behind a TLS-terminating proxy is_secure() may be False; follow the session cookie.
            secure=self.request.is_secure() or bool(settings.SESSION_COOKIE_SECURE),
            httponly=True,
            samesite="Lax",
        )
