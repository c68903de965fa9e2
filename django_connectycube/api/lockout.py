"""The login guard: how many password guesses an account, an address and a device get.

The policy follows the OWASP Authentication Cheat Sheet ("Account Lockout") and OWASP's "Slow
Down Online Guessing Attacks with Device Cookies"; the README's security section states what it
guarantees.

* **One account, one key.** The submitted name is resolved the way Django's ``ModelBackend``
  finds the user (the default manager's ``get_by_natural_key``), and every count is kept for the
  account's pk: two names that differ only in case folding (``rußell``, ``russell``) are two
  accounts to the backend, and so to the guard. A name no account has is keyed by its exact
  text, so unknown names are counted and answered exactly like real ones.
* **Reserve, then check.** An attempt first takes its place in the counters with an atomic
  ``incr`` and only then may check a password; a failure keeps the place, a refusal or a success
  gives it back. So parallel guesses cannot all slip through before the first failure is counted.
* **Strangers: a progressive delay per account and address, not a lock.** An attempt without
  this account's device cookie counts on the account and on the (account, address) pair. Once
  either holds ``LOGIN_FAILURE_LIMIT`` failures, each attempt from that address must win the
  pair's gate (``cache.add``, so exactly one attempt wins), which stays shut for a delay doubling
  with the larger of the two counts up to ``MAX_DELAY``. Because the gate belongs
  to the address, an attacker who takes every slot the moment it opens holds up only the
  attempts from their own address: the owner elsewhere finds their own gate open. Because the
  account's count sets the delay too, every further address of an attacker is slowed to the cap
  after its first guess. Refused attempts extend nothing.
* **Per client address**: ``LOGIN_FAILURE_IP_LIMIT`` failures within ``WINDOW``
  seconds, the address taken behind DRF's ``NUM_PROXIES`` trusted proxies (:mod:`.client_ip`).
* **Known devices.** A successful login sets a signed cookie naming the account's key. A login
  for that same account presenting it skips the strangers' delay and the address limit; the
  device has its own budget of ``LOGIN_FAILURE_LIMIT`` failures, after which it is a stranger.
  A good login clears only the counts of the account it logged into.

Counters live in the ``CONNECTYCUBE["CACHE"]`` cache, which every process must share (Redis); keys
hold hashes, never account names or addresses.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest, HttpResponseBase
from django.utils.crypto import get_random_string

from django_connectycube.api.client_ip import client_ip
from django_connectycube.conf import app_settings

__all__ = ["DEVICE_COOKIE", "LoginGuard", "account_key", "delay_after"]

_PREFIX = "connectycube:login"
DEVICE_SALT = "django_connectycube.login.device"
#: The known-device cookie; namespaced, so it meets no other cookie of the site.
DEVICE_COOKIE = "connectycube_device"
#: Seconds a known-device cookie stays valid: a year, so a user who logs in now and then keeps
#: the device's own budget while someone else guesses their password.
DEVICE_COOKIE_AGE = 365 * 24 * 3600
#: Seconds of the first delay once the free failures are spent; each further attempt doubles it.
#: A second is unnoticeable to a person retyping a password and already caps a guesser.
DELAY = 1
#: Seconds the delay never grows beyond: a quarter hour keeps guessing hopeless (a few hundred
#: tries a day per address) without shutting the owner out for longer than a coffee break.
MAX_DELAY = 900
#: Seconds without a failure after which the counts are forgotten (for an account: after its
#: delay ends), matching MAX_DELAY so a forgotten count never cuts a delay short.
WINDOW = 900
#: Doubling stops here; the cap is reached long before (2**30 seconds is 34 years).
_MAX_DOUBLINGS = 30


def _digest(value: str) -> str:
    # Hashed: cache keys must be short and safe, and names or addresses must not sit in the cache.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def account_key(username: str) -> str:
    """The key the counters and the device cookie use for a submitted username: the account's
    pk when the backend would find one, else the exact text (never normalised here: only the
    user model decides which spellings name the same account)."""
    user_model = get_user_model()
    try:
        user = user_model._default_manager.get_by_natural_key(username)
    except (user_model.DoesNotExist, user_model.MultipleObjectsReturned):
        return "name:" + _digest(username)
    return f"pk:{user.pk}"


def delay_after(gated_attempts: int) -> int:
    """Seconds the gate stays shut after the n-th (0-based) attempt beyond the free ones."""
    return max(1, math.ceil(min(MAX_DELAY, DELAY * 2 ** min(gated_attempts, _MAX_DOUBLINGS))))


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
    check, then exactly one of :meth:`failed`, :meth:`succeeded` or :meth:`cancel`."""

    def __init__(self, request: HttpRequest, account: str | None) -> None:
        self.request = request
        self.cache: BaseCache = caches[app_settings.CACHE]
        self.window = WINDOW
        self.limit = int(app_settings.LOGIN_FAILURE_LIMIT)
        address = _digest(client_ip(request))
        self.ip = _Counter(self.cache, f"{_PREFIX}:ip:{address}")
        #: The account's key (:func:`account_key`), or None for a login without a username.
        self.account = account_key(account) if account is not None else None
        self.account_counter: _Counter | None = None
        self.pair: _Counter | None = None
        self.gate_key = ""
        if self.account is not None:
            digest = _digest(self.account)
            pair = _digest(f"{self.account}|{address}")
            self.account_counter = _Counter(self.cache, f"{_PREFIX}:account:{digest}")
            self.pair = _Counter(self.cache, f"{_PREFIX}:pair:{pair}")
            self.gate_key = f"{_PREFIX}:gate:{pair}"
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
        if wait is not None or self.account_counter is None or self.pair is None:
            return wait
        counts = (self.account_counter.reserve(self.window), self.pair.reserve(self.window))
        self._held += [self.account_counter, self.pair]
        excess = max(counts) - self.limit
        if excess < 0:
            return None
        delay = delay_after(excess)
        if self.cache.add(self.gate_key, time.time() + delay, delay):
            self._gate_won = True
            self._ttl = delay + self.window
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
        """A wrong password: every reservation stays, as a failure, remembered until the window
        after the delay it started has passed."""
        for counter in self._held:
            counter.keep(self.window if counter is self.ip else self._ttl)
        if self.ip in self._held:
            self.cache.set(self.ip.key + ":until", time.time() + self.window, self.window)
        self._held = []

    def cancel(self) -> None:
        """The check could not be made (an error): the attempt counts for nothing."""
        self._give_back()
        if self._gate_won:
            self.cache.delete(self.gate_key)

    def succeeded(self) -> None:
        """The right password: the address's reservation is given back, and this account's
        failures are forgotten (the device's, or the strangers' on the account and from this
        address). Other addresses' gates stay shut: their failures were not the owner's."""
        if self.ip in self._held:
            self.ip.release()
        if self.device is not None:
            self.device.clear()
        elif self.pair is not None and self.pair in self._held:
            for counter in (self.account_counter, self.pair):
                if counter is not None:
                    counter.clear()
            self.cache.delete(self.gate_key)
        self._held = []

    # ---- known devices -------------------------------------------------------------------

    def _known_device(self) -> _Counter | None:
        if self.account is None:
            return None
        value = self.request.COOKIES.get(DEVICE_COOKIE)
        if not value:
            return None
        try:
            payload = signing.loads(value, salt=DEVICE_SALT, max_age=DEVICE_COOKIE_AGE)
        except signing.BadSignature:
            return None
        if not isinstance(payload, dict) or payload.get("a") != _digest(self.account):
            return None
        nonce = payload.get("n")
        if not isinstance(nonce, str) or not nonce:
            return None
        return _Counter(self.cache, f"{_PREFIX}:device:{_digest(nonce)}")

    def remember_device(self, response: HttpResponseBase) -> None:
        """Mark the client of a successful login as a known device of this account."""
        if self.account is None:
            return
        value = signing.dumps(
            {"a": _digest(self.account), "n": get_random_string(32)}, salt=DEVICE_SALT
        )
        response.set_cookie(
            DEVICE_COOKIE,
            value,
            max_age=DEVICE_COOKIE_AGE,
            path=self.request.path,
            # Behind a TLS-terminating proxy is_secure() may be False; follow the session cookie.
            secure=self.request.is_secure() or bool(settings.SESSION_COOKIE_SECURE),
            httponly=True,
            samesite="Lax",
        )
