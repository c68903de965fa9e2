"""A circuit breaker shared by every worker through Django's cache.

Why: during an outage each worker retrying its own rows on its own schedule still adds up to a
steady stream of requests against a service that cannot answer, and every one of them costs a
worker slot for the full timeouts. Instead, ``CIRCUIT_BREAKER_THRESHOLD`` remote failures in a row
(from any process) open the circuit: pushes stop calling ConnectyCube and record a due time for
when it may be back. After ``CIRCUIT_BREAKER_COOLDOWN`` seconds exactly one push (whichever
claims the probe first) is let through; if it fails the circuit stays open twice as long (once:
see :data:`COOLDOWN_GROWTH`), if ConnectyCube answers the circuit closes.

So during an outage ConnectyCube sees at most the pushes that were already in flight, the
threshold's failures, and one probe per cool-down, however many workers and rows there are.
The probe is the sweep's (:func:`.enqueue.sweep`): a wake-up scheduled for the end of each pause
(:func:`claim_wakeup`, one per pause) sends it then, and the backlog right after it succeeds, so
healing takes at most one capped pause, not a pause plus beat's ticks.

The state lives in the cache ``CONNECTYCUBE["CACHE"]`` names (a shared one such as Redis in
production; a per-process cache gives each process its own breaker). A cache that fails is
treated as a closed circuit: the breaker may only ever hold pushes back, never lose them.

Whether a push that ended reached ConnectyCube at all (an answer, even a refusal, closes the
circuit; a push that sent nothing proves nothing) is counted here too: :func:`watch` makes a
client count its HTTP attempts in the calling thread, and :func:`calls_made` reads the count.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.utils import timezone

from django_connectycube.client import ConnectyCubeClient
from django_connectycube.conf import app_settings
from django_connectycube.errors import CircuitOpen

logger = logging.getLogger("django_connectycube")

__all__ = [
    "calls_made",
    "claim_wakeup",
    "half_open",
    "is_open",
    "probe_or_wait",
    "record_failure",
    "record_success",
    "release_probe",
    "reset",
    "watch",
]

PREFIX = "django_connectycube:breaker:"
FAILURES, OPEN_UNTIL, COOLDOWN, PROBE, WAKEUP = (
    PREFIX + "failures",
    PREFIX + "open_until",
    PREFIX + "cooldown",
    PREFIX + "probe",
    PREFIX + "wakeup:",
)
#: How long a run of failures is remembered without a new one (seconds).
FAILURE_MEMORY = 600
#: The longest pause is this many cool-downs: ConnectyCube back is noticed within it, so a longer
#: outage costs one probe a minute (at the default) rather than pauses that outgrow the outage.
COOLDOWN_GROWTH = 2

_calls = threading.local()


def clock() -> float:
    """Now, in Unix seconds, from Django's clock (which tests move to let hours pass)."""
    return timezone.now().timestamp()


def _enabled() -> bool:
    return int(app_settings.CIRCUIT_BREAKER_THRESHOLD) > 0


def _cache() -> Any:
    return caches[app_settings.CACHE]


def _safe(default: Any, func: Callable[[], Any]) -> Any:
    try:
        return func()
    except Exception as exc:  # a cache outage must never stop or lose a push
        logger.warning("ConnectyCube circuit breaker: no cache (%s); treated as closed", exc)
        return default


def is_open() -> float | None:
    """Seconds until a probe may go out while the circuit is open, else ``None`` (closed, or
    open but due for a probe). Reads only: the sweep asks it without claiming the probe."""
    if not _enabled():
        return None
    until = _safe(None, lambda: _cache().get(OPEN_UNTIL))
    if until is None:
        return None
    remaining = float(until) - clock()
    return remaining if remaining > 0 else None


def claim_wakeup() -> float | None:
    """Seconds until the open circuit's probe is due, for the first caller in this pause only
    (it schedules the wake-up that sends the probe; the others rely on it), else ``None``."""
    if not _enabled():
        return None
    until = _safe(None, lambda: _cache().get(OPEN_UNTIL))
    remaining = float(until) - clock() if until is not None else 0.0
    if remaining <= 0:
        return None
    key = f"{WAKEUP}{until}"
    if _safe(False, lambda: _cache().add(key, 1, timeout=int(remaining) + FAILURE_MEMORY)):
        return remaining
    return None


def half_open() -> bool:
    """Whether the circuit is open but due for a probe."""
    if not _enabled():
        return False
    until = _safe(None, lambda: _cache().get(OPEN_UNTIL))
    return until is not None and float(until) <= clock()


def probe_or_wait() -> bool:
    """Return if this push may call ConnectyCube: ``False`` when the circuit is closed, ``True``
    when this push won the probe of a half-open circuit. Raise :class:`CircuitOpen` otherwise."""
    if not _enabled():
        return False
    until = _safe(None, lambda: _cache().get(OPEN_UNTIL))
    if until is None:
        return False
    now = clock()
    if float(until) > now:
        raise CircuitOpen(float(until) - now)
    cooldown = _cooldown()
    # One probe per cool-down across every process: the first to add the key goes.
    if _safe(True, lambda: _cache().add(PROBE, now, timeout=max(1, int(cooldown) + 1))):
        return True
    raise CircuitOpen(cooldown)


def _cooldown() -> float:
    stored = _safe(None, lambda: _cache().get(COOLDOWN))
    return float(stored) if stored else float(app_settings.CIRCUIT_BREAKER_COOLDOWN)


def record_failure(*, probe: bool = False) -> None:
    """Count a remote failure: the threshold's one opens the circuit, a failed ``probe``
    keeps it open twice as long (pushes that were in flight when it opened change nothing)."""
    if not _enabled():
        return

    def count() -> int:
        cache = _cache()
        cache.add(FAILURES, 0, timeout=FAILURE_MEMORY)
        try:
            return int(cache.incr(FAILURES))
        except ValueError:  # expired between add and incr
            cache.set(FAILURES, 1, timeout=FAILURE_MEMORY)
            return 1

    failures = _safe(0, count)
    was_open = _safe(None, lambda: _cache().get(OPEN_UNTIL)) is not None
    if was_open and not probe:
        return
    if not was_open and failures < int(app_settings.CIRCUIT_BREAKER_THRESHOLD):
        return
    base = float(app_settings.CIRCUIT_BREAKER_COOLDOWN)
    ceiling = base * COOLDOWN_GROWTH
    cooldown = min(ceiling, _cooldown() * 2) if was_open else min(ceiling, base)
    until = clock() + cooldown
    keep = int(ceiling) + FAILURE_MEMORY

    def open_circuit() -> None:
        cache = _cache()
        cache.set_many({OPEN_UNTIL: until, COOLDOWN: cooldown}, timeout=keep)
        cache.delete(PROBE)

    _safe(None, open_circuit)
    logger.warning(
        "ConnectyCube failed %s times in a row: pushes paused for %.0f s (circuit open)",
        failures,
        cooldown,
    )


def record_success() -> None:
    """ConnectyCube answered: close the circuit and forget the failures (one cache read when
    there is nothing to forget, the common case)."""
    if not _enabled():
        return

    def close() -> None:
        cache = _cache()
        if not cache.get_many([FAILURES, OPEN_UNTIL]):
            return
        was_open = cache.get(OPEN_UNTIL) is not None
        cache.delete_many([FAILURES, OPEN_UNTIL, COOLDOWN, PROBE])
        if was_open:
            logger.warning("ConnectyCube answers again: pushes resume (circuit closed)")

    _safe(None, close)


def reset() -> None:
    """Forget everything (tests, and an operator who knows ConnectyCube is back)."""
    _safe(None, lambda: _cache().delete_many([FAILURES, OPEN_UNTIL, COOLDOWN, PROBE]))


def release_probe() -> None:
    """Hand the probe back unused (the push had nothing to send): the next push probes."""
    if _enabled():
        _safe(None, lambda: _cache().delete(PROBE))


def _count_call() -> None:
    _calls.made = getattr(_calls, "made", 0) + 1


def watch(client: ConnectyCubeClient) -> ConnectyCubeClient:
    """Make ``client`` count its HTTP attempts for :func:`calls_made`; harmless to repeat."""
    hooks: list[Callable[[], None]] = client.transport.before_attempt
    if _count_call not in hooks:
        hooks.append(_count_call)
    return client


def calls_made() -> int:
    """HTTP attempts this thread has made through watched clients (a running count)."""
    return int(getattr(_calls, "made", 0))
