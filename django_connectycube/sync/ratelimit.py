"""One rate limit for every worker: at most ``RATE_LIMIT`` requests a second to ConnectyCube.

Why: ConnectyCube limits each application's requests per second and answers 429 beyond it. A
backfill spread over many workers, each going as fast as it can, only learns that limit by
being refused. So every client the app builds asks this limiter before each HTTP attempt (first
tries and retries alike), and the count lives in Django's cache (``CACHE``): every
thread, process and machine sharing that cache shares the one limit.

How: fixed one-second windows. The cache's ``incr`` of second ``k``'s counter hands out ``n``;
the n-th request of that second goes at ``k + (n - 1) / RATE_LIMIT``, and one past the limit
waits for the next second. A request leaves within the second it was counted in (one held up
past it, say by a busy CPU, is counted again in the next), so no second of the clock ever lets
more than the limit go, and within a second they leave evenly spread, not all at its start.

Why not a token bucket: a bucket is two values (tokens left, last refill) that must be read and
written together. Django's cache API has no compare-and-set and no scripts, so two workers
would both read "one token left" and both spend it. A window needs only ``add`` (create if
absent) and ``incr``, which are atomic on Redis, Memcached and the local-memory cache, so its
count is exact however many workers race. (The database and file caches implement ``incr`` as a
read then a write; system check ``connectycube.W012`` says so.)

A 429 means the limit is too high for ConnectyCube right now (a lower plan, another site on the
same application): every sender holds back for its ``Retry-After`` (one second without one, at
most ``MAX_PAUSE``). The windows of that span are marked full, so nobody is handed a slot, and a
request that was already waiting for its slot looks once more before it goes.

The wait happens before the lease on the user is renewed (see :mod:`.lease`), so it never leaves
a request in flight on an expired lease; it lasts at most the client's ``max_retry_wait`` (half
``SYNC_ON_LOGIN_TIMEOUT`` for a login), then :class:`RateLimited` is raised and no request made.
A cache that fails never stops a push: the limiter lets requests through and logs it. Machines
sharing a limit need synchronised clocks (NTP): a window is a second of each machine's clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import caches

from django_connectycube.client import RateLimited
from django_connectycube.conf import ConfigurationError, app_settings

logger = logging.getLogger("django_connectycube")

__all__ = ["SharedRateLimit", "check_rate_limit", "throttle_from_settings"]

PREFIX = "django_connectycube:ratelimit:"
#: The longest a 429 pauses every sender (a longer ``Retry-After`` is the failure policy's).
MAX_PAUSE = 60.0
#: How long a 429 without ``Retry-After`` pauses every sender.
DEFAULT_PAUSE = 1.0
#: How long a window's counter outlives its second.
WINDOW_TTL = 5
#: Cache failures are logged at most this often (seconds): the limiter runs per request.
LOG_EVERY = 60.0


def check_rate_limit(value: Any) -> int | None:
    """``RATE_LIMIT`` as a whole number of requests a second, or ``None`` (no limit);
    :class:`ConfigurationError` naming the setting for anything else."""
    if value is None:
        return None
    integer = isinstance(value, int) and not isinstance(value, bool)
    whole = isinstance(value, float) and math.isfinite(value) and value.is_integer()
    if (integer or whole) and value >= 1:
        return int(value)
    raise ConfigurationError(
        f'CONNECTYCUBE["RATE_LIMIT"] must be a whole number of requests per second (at least '
        f"1), or None for no limit; got {value!r}. Use your ConnectyCube plan's limit, e.g. 100."
    )


class SharedRateLimit:
    """The limiter one client asks before each request (the client's ``Throttle``)."""

    def __init__(
        self,
        limit: int,
        *,
        cache_alias: str = "default",
        scope: str = "",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float | None = None,
    ) -> None:
        self.limit = int(limit)
        #: The longest one request waits here; beyond it :class:`RateLimited` is raised, as the
        #: client does for a ``Retry-After`` above ``MAX_RETRY_WAIT`` (a login must answer).
        self.max_wait = max_wait
        self.cache_alias = cache_alias
        self.prefix = f"{PREFIX}{scope}:"
        self.clock = clock
        self.sleep = sleep
        #: This process's own 429s take effect here without a round trip to the cache.
        self._paused_until = 0.0
        self._logged = -LOG_EVERY
        self._log_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SharedRateLimit {self.limit}/s in cache {self.cache_alias!r}>"

    def acquire(self) -> int:
        """Wait until one more request may go out; returns the second it was counted in."""
        deadline = None if self.max_wait is None else self.clock() + self.max_wait
        while True:
            now = self.clock()
            if self._paused_until > now:
                self._sleep_until(self._paused_until, deadline)
                continue
            window = math.floor(now)
            n = self._safe(None, lambda w=window: self._count(w))  # type: ignore[misc]  # a lambda's bound default
            if n is None:  # no cache: let the request through
                return window
            if n > self.limit:
                if not self._pause_seen(self.clock()):  # else: wait for the pause's end at once
                    self._sleep_until(window + 1, deadline)
                continue
            wait = window + (n - 1) / self.limit - self.clock()
            if wait > 0:
                self._sleep_until(window + (n - 1) / self.limit, deadline)
                if self._pause_seen(self.clock()):
                    continue  # a 429 arrived while this request waited for its slot
            if self.clock() >= window + 1:
                continue  # this thread was held up past its second: counting it there is void
            return window

    def _sleep_until(self, when: float, deadline: float | None) -> None:
        if deadline is not None and when > deadline:
            raise RateLimited(
                f"Held back by the shared rate limit (RATE_LIMIT {self.limit}/s, or a 429's "
                f"pause) for longer than {self.max_wait:g} s; no request was made.",
                status=429,
                retry_after=max(0.0, when - self.clock()),
            )
        self.sleep(max(0.0, when - self.clock()))

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: pause every sender sharing the cache for ``retry_after`` seconds."""
        pause = DEFAULT_PAUSE if retry_after is None else min(max(retry_after, 0.0), MAX_PAUSE)
        now = self.clock()
        until = now + pause
        self._paused_until = max(self._paused_until, until)
        full: dict[str, float] = {
            self._key(w): self.limit for w in range(math.floor(now), math.ceil(until))
        }
        full[self._key("paused")] = until
        timeout = math.ceil(pause) + WINDOW_TTL
        self._safe(None, lambda: self._cache().set_many(full, timeout=timeout))
        logger.warning(
            "ConnectyCube answered 429: every worker holds back for %.1f s (RATE_LIMIT %s/s)",
            pause,
            self.limit,
        )

    # ---- the cache --------------------------------------------------------------------------

    def _cache(self) -> Any:
        return caches[self.cache_alias]

    def _key(self, window: int | str) -> str:
        return f"{self.prefix}{window}"

    def _count(self, window: int) -> int:
        """Count one request in ``window``; the running count is this request's place."""
        cache, key = self._cache(), self._key(window)
        try:
            return int(cache.incr(key))
        except ValueError:  # the first request of this second
            cache.add(key, 0, timeout=WINDOW_TTL)
            return int(cache.incr(key))

    def _pause_seen(self, now: float) -> bool:
        until = self._safe(None, lambda: self._cache().get(self._key("paused")))
        if until is not None and float(until) > now:
            self._paused_until = max(self._paused_until, float(until))
            return True
        return self._paused_until > now

    def _safe(self, default: Any, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as exc:  # a cache outage must never stop a push
            with self._log_lock:
                due = time.monotonic() - self._logged >= LOG_EVERY
                if due:
                    self._logged = time.monotonic()
            if due:
                logger.warning("ConnectyCube rate limit: no cache (%s); not limiting", exc)
            return default


def throttle_from_settings(*, max_wait: float | None = None) -> SharedRateLimit | None:
    """The limiter for a client built from settings; ``None`` when ``RATE_LIMIT`` is off.
    ``max_wait``: the client's own patience (its ``max_retry_wait``)."""
    limit = check_rate_limit(app_settings.RATE_LIMIT)
    if limit is None:
        return None
    alias = app_settings.CACHE
    if alias not in settings.CACHES:
        raise ConfigurationError(
            f'CONNECTYCUBE["CACHE"] names {alias!r}, which is not in settings.CACHES.'
        )
    scope = str(app_settings.get("APPLICATION_ID"))
    return SharedRateLimit(limit, cache_alias=alias, scope=scope, max_wait=max_wait)
