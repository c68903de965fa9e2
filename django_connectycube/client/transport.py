"""HTTP transport: one pooled ``requests.Session``, timeouts, retries and typed errors.

Retries happen only where repeating cannot duplicate a write: requests marked ``safe`` (GET, PUT,
DELETE, session creation) are retried on connection errors, timeouts, 5xx and 429; any other
request only when the server provably did not process it (connection refused, connect timeout,
429, 503). Waits use exponential backoff with full jitter, honour ``Retry-After`` up to a cap, and
draw from a retry budget so a failing server is not hammered by every caller at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .dates import parse_http_date
from .environment import EnvironmentSettings
from .errors import ConnectyCubeError, RateLimited, error_for_status, transport_error
from .redaction import log

__all__ = [
    "DEFAULT_TIMEOUT",
    "RetryBudget",
    "RetryPolicy",
    "Throttle",
    "Transport",
    "parse_retry_after",
    "provably_unprocessed",
]

logger = logging.getLogger("django_connectycube")

#: (connect, read) seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

#: Methods that never duplicate a write when repeated.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

#: Statuses that prove the server did not act on the request, so even a POST may be repeated.
UNPROCESSED_STATUSES = frozenset({429, 503})

#: Statuses worth repeating for a safe request.
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504, 429})

_RETRYABLE_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    ``retries`` is the number of repeats after the first attempt. Waits are drawn uniformly from
    ``[0, min(backoff_max, backoff_base * 2**n)]`` (full jitter). A ``Retry-After`` longer than
    ``max_retry_wait`` is not slept through: :class:`RateLimited` is raised at once so a task
    queue can schedule the retry instead.
    """

    retries: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    max_retry_wait: float = 30.0

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The wait before repeat number ``retry_number`` (0-based), with full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * (2**retry_number))
        return (rng or random).uniform(0, ceiling)


class RetryBudget:
    """A token bucket that caps retries to a fraction of traffic.

    Every first attempt deposits ``ratio`` tokens (up to ``capacity``); every retry spends one.
    The bucket starts full, so a quiet client can still retry a burst of ``capacity`` failures.
    """

    def __init__(self, capacity: float = 10.0, ratio: float = 0.2) -> None:
        self.capacity = float(capacity)
        self.ratio = float(ratio)
        self._tokens = float(capacity)
        self._lock = threading.Lock()

    @property
    def available(self) -> float:
        """Tokens left (one retry costs one)."""
        return self._tokens

    def deposit(self) -> None:
        """Record a first attempt."""
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take one retry from the budget, or return False when it is exhausted."""
        with self._lock:
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class Throttle(Protocol):
    """Paces the requests of many clients (threads, processes, machines) against one limit.

    ConnectyCube limits each application's requests per second, whoever sends them; only
    something shared by every sender can keep them under it, so the transport only asks.
    """

    def acquire(self) -> object:
        """Block until one more request may go out (called before every attempt, retries too)."""

    def rate_limited(self, retry_after: float | None) -> None:
        """ConnectyCube answered 429: every sender should hold back (``Retry-After`` seconds)."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds from either form: delta seconds or an HTTP date."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    when = parse_http_date(text)
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def provably_unprocessed(exc: BaseException) -> bool:
    """True when the request never reached the server (refused, unresolvable, connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError)):
            return True
        if isinstance(item, BaseException):
            stack.extend(item.args)
            stack.append(getattr(item, "reason", None))
            stack.append(item.__cause__)
            stack.append(item.__context__)
    return False


def _describe(url: str) -> str:
    """``/users/5`` for log lines and errors: the path only, never the query (tokens live there)."""
    return urlsplit(url).path or "/"


class Transport:
    """Sends one logical request, with retries, and returns the successful response."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        policy: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        user_agent: str = "django-connectycube",
        pooled: bool = True,
        pool_size: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.budget = budget or RetryBudget()
        self.user_agent = user_agent
        self.pooled = pooled
        self.pool_size = pool_size
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self.throttle = throttle
        self.environment = EnvironmentSettings()
        self.session = self._new_session()
        #: Called before every attempt (first try and each retry), in the calling thread; an
        #: exception from one aborts the request. The sync engine extends its lock on the user
        #: here, so that a request slowed down by retries never outlives it.
        self.before_attempt: list[Callable[[], None]] = []

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(
            pool_connections=self.pool_size, pool_maxsize=self.pool_size, max_retries=0
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = self.user_agent
        session.headers["Accept"] = "application/json"
        # ConnectyCube authenticates by header; a cookie must never leak between sessions.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # Proxies and the CA bundle come with each request (:mod:`.environment`), never ~/.netrc.
        session.trust_env = False
        return session

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def url(self, path: str) -> str:
        """The absolute URL of an API route (``users/5`` → ``{api_url}/users/5``)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.api_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        safe: bool | None = None,
    ) -> requests.Response:
        """Send with retries; return a 2xx response or raise a :class:`ConnectyCubeError`.

        ``safe`` defaults to "the method is GET, PUT or DELETE"; pass True for other requests
        that may be repeated (session creation). ``json`` may be a callable that builds the body
        afresh for every attempt (a signed session request needs a new nonce each time).
        """
        method = method.upper()
        if safe is None:
            safe = method in SAFE_METHODS
        url = self.url(path)
        shown = _describe(url)
        policy = self.policy
        self.budget.deposit()
        retry_number = 0
        while True:
            if self.throttle is not None:
                self.throttle.acquire()
            for hook in self.before_attempt:
                hook()
            started = time.monotonic()
            try:
                response = self._send(method, url, params, json, data, files, headers)
            except requests.RequestException as exc:
                unprocessed = provably_unprocessed(exc)
                hint = (
                    ""
                    if unprocessed or safe
                    else ("The server may have processed this request, so it was not repeated")
                )
                error: ConnectyCubeError = transport_error(
                    exc, method=method, path=shown, maybe_processed=not unprocessed, hint=hint
                )
                retryable = isinstance(exc, _RETRYABLE_EXCEPTIONS) and (safe or unprocessed)
                if retryable and retry_number < policy.retries:
                    wait = policy.backoff(retry_number, self.rng)
                    if self._may_retry(method, shown, str(error), retry_number, wait):
                        retry_number += 1
                        continue
                self._log(logging.WARNING, "%s %s failed: %s", method, shown, error)
                raise error from exc
            elapsed_ms = (time.monotonic() - started) * 1000
            status = response.status_code
            self._log(logging.DEBUG, "%s %s -> %s (%.0f ms)", method, shown, status, elapsed_ms)
            if 200 <= status < 300:
                return response
            error = self._error(response, method, shown)
            if isinstance(error, RateLimited) and self.throttle is not None:
                self.throttle.rate_limited(error.retry_after)
            retryable = status in UNPROCESSED_STATUSES or (safe and status in RETRYABLE_STATUSES)
            if not retryable or retry_number >= policy.retries:
                raise error
            retry_after = (
                error.retry_after
                if isinstance(error, RateLimited)
                else (parse_retry_after(response.headers.get("Retry-After")))
            )
            if retry_after is not None and retry_after > policy.max_retry_wait:
                self._log(
                    logging.WARNING,
                    "%s %s -> %s with Retry-After %.1f s, above the %.1f s cap: not waiting",
                    method,
                    shown,
                    status,
                    retry_after,
                    policy.max_retry_wait,
                )
                raise error
            wait = (
                retry_after if retry_after is not None else policy.backoff(retry_number, self.rng)
            )
            if not self._may_retry(method, shown, f"HTTP {status}", retry_number, wait):
                raise error
            retry_number += 1

    def _may_retry(self, method: str, shown: str, why: str, retry_number: int, wait: float) -> bool:
        if not self.budget.try_spend():
            self._log(logging.WARNING, "%s %s: %s; retry budget exhausted", method, shown, why)
            return False
        self._log(
            logging.INFO,
            "%s %s: %s; retry %d/%d in %.2f s",
            method,
            shown,
            why,
            retry_number + 1,
            self.policy.retries,
            wait,
        )
        if wait > 0:
            self.sleep(wait)
        return True

    def _send(
        self,
        method: str,
        url: str,
        params: Any,
        json: Any,
        data: Any,
        files: Any,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        kwargs: dict[str, Any] = {
            "params": params,
            "json": json() if callable(json) else json,
            "data": data,
            "files": files,
            "headers": dict(headers) if headers else None,
            "timeout": self.timeout,
            "allow_redirects": False,
            **self.environment.for_url(url),
        }
        if self.pooled:
            return self.session.request(method, url, **kwargs)
        with self._new_session() as session:
            response = session.request(method, url, **kwargs)
            response.content  # noqa: B018 (read the body before the connection closes)
            return response

    def _error(self, response: requests.Response, method: str, shown: str) -> ConnectyCubeError:
        errors: Any = None
        text = ""
        try:
            body = response.json()
        except ValueError:
            body = None
            text = response.text or ""
        if isinstance(body, dict):
            errors = body.get("errors", body.get("error", body.get("message")))
        elif body is not None:
            errors = body
        if errors is None and text.lstrip().startswith("<"):
            errors = _xml_message(text)
        return error_for_status(
            response.status_code,
            errors,
            response=response,
            method=method,
            path=shown,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            fallback_text=text or (response.reason or ""),
        )

    @staticmethod
    def _log(level: int, message: str, *args: Any) -> None:
        log(logger, level, message, *args)


def _xml_message(text: str) -> list[str] | None:
    """The ``<Message>`` of an S3-style XML error (blob uploads go to storage, not the API)."""
    start = text.find("<Message>")
    end = text.find("</Message>")
    if start == -1 or end == -1:
        return None
    return [text[start + len("<Message>") : end].strip()]
