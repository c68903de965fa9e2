"""The failure policy: what every outcome of a push means, and what happens to the row next.

The tasks, the batched backfill, the sync command and the push before a login all run a push
through :func:`attempt` (or record a failure with :func:`record`); nothing else decides whether
an error is worth retrying. An outcome is one of five kinds:

``done``       the push finished (whatever it did).
``transient``  ConnectyCube did not answer usefully (no answer, 5xx, 429, a malformed 2xx, an
               expired session), or something unknown went wrong (a bug in a mapping callable,
               a missing avatar file, a database error). Counted; retried with capped
               exponential backoff and full jitter until ``RETRY_HORIZON`` has passed since the
               first failure of the run, then ``failed``. Never silent: ``last_error`` holds the
               exception's type and its message, redacted.
``busy``       owed work elsewhere blocks the push (another worker holds the user, a pending
               delete still holds its login). Counted and backed off like a transient failure.
``conflict``   ConnectyCube holds data that belongs to someone else: ``failed`` at once.
``permanent``  ConnectyCube refused the data or the credentials (4xx): ``failed`` at once.

Where a retry waits: a wait up to :data:`COUNTDOWN_MAX` may be held by the broker as a task
countdown (the caller asks with ``hold=True``); anything longer is only a due time on the row
(``next_attempt_at``) that the sweep hands to Celery once it has come, so no message sits in a
broker for hours (Redis redelivers such messages after its visibility timeout; RabbitMQ keeps
them in worker memory).

Remote failures also feed the shared circuit breaker (:mod:`.breaker`); while it is open a push
makes no request, no retry is held by the broker, and the row waits in the database for the
sweep, which sends it with the breaker's probe or right after the probe succeeds.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from django_connectycube.client import (
    ConnectyCubeError,
    RateLimited,
    ServerError,
    SessionExpired,
    TransportError,
)
from django_connectycube.client.redaction import redact
from django_connectycube.conf import app_settings
from django_connectycube.errors import (
    Busy,
    CircuitOpen,
    LeaseLost,
    SessionUnavailable,
    SyncConflict,
    SyncError,
    describe,
)
from django_connectycube.models import CubeUser
from django_connectycube.signals import user_sync_failed
from django_connectycube.sync import breaker, lease

logger = logging.getLogger("django_connectycube")

#: Seconds of the first retry's longest wait; the n-th waits up to ``BACKOFF_BASE * 2**(n-1)``
#: (full jitter). Two seconds rides out a blip without hammering a service that is down.
BACKOFF_BASE = 2.0
#: The longest wait between two attempts, as a share of ``RETRY_HORIZON`` (an hour of the
#: default three days): a row gets dozens of tries within any horizon, and a short horizon is
#: not spent waiting.
BACKOFF_SHARE = 1 / 72
#: Seconds; a retry due sooner is held by the broker as the task's countdown, a later one is a
#: due time on the row that the sweep hands over. A minute stays far below every broker's
#: visibility timeout (Redis: an hour; SQS: half an hour), past which a held message would be
#: delivered a second time.
COUNTDOWN_MAX = 60.0

__all__ = [
    "ADOPTED",
    "BUSY",
    "CREATED",
    "DELETED",
    "DISABLED",
    "FAILED",
    "GONE",
    "RETRYING",
    "SKIPPED",
    "UNCHANGED",
    "UPDATED",
    "Kind",
    "Result",
    "attempt",
    "backoff",
    "classify",
    "record",
    "remote_failed",
    "retry_after",
    "unavailable",
]

#: What a push did: :func:`.push.push_user`, :func:`.push.delete_remote_user`, the backfill
#: and the tasks return one of these (``skipped``: nothing was owed, or nobody to push).
CREATED, ADOPTED, UPDATED, UNCHANGED, SKIPPED, DELETED, GONE = (
    "created",
    "adopted",
    "updated",
    "unchanged",
    "skipped",
    "deleted",
    "already-gone",
)
#: What :func:`attempt` returns instead of the push's own outcome.
FAILED, RETRYING, BUSY, DISABLED = "failed", "retrying", "busy", "disabled"


class Kind(str, enum.Enum):
    """The five kinds of outcome (see the module's docstring for what each one leads to)."""

    DONE = "done"
    TRANSIENT = "transient"
    BUSY = "busy"
    CONFLICT = "conflict"
    PERMANENT = "permanent"


#: Answers that say ConnectyCube cannot serve anyone right now: no answer, a 5xx, a 429.
_DOWN: tuple[type[ConnectyCubeError], ...] = (TransportError, ServerError, RateLimited)

#: 4xx answers that still mean "try again later".
_RETRYABLE_4XX = frozenset({408, 425, 429})


def _malformed(error: ConnectyCubeError) -> bool:
    """A success answer whose body is not what the protocol promises (the request may well
    have been carried out: a retry's look-up finds the user it created). One whose body states
    ``errors`` is a refusal instead, as the real service words some (a refused CIdP login)."""
    status = getattr(error, "status", None)
    return status is None or (200 <= status < 300 and error.errors is None)


def _refusal(status: int) -> bool:
    """A 4xx, or a success status whose body stated errors (malformed ones are ruled out)."""
    return 400 <= status < 500 or 200 <= status < 300


def classify(error: BaseException | None) -> Kind:
    """The kind of an outcome; ``None`` (no error) is ``done``."""
    if error is None:
        return Kind.DONE
    if isinstance(error, (Busy, LeaseLost)):
        return Kind.BUSY
    if isinstance(error, SyncConflict):
        return Kind.CONFLICT
    if remote_failed(error) or isinstance(error, SessionExpired):
        return Kind.TRANSIENT
    if isinstance(error, ConnectyCubeError):
        status = error.status
        if status in _RETRYABLE_4XX or not _refusal(status):
            return Kind.TRANSIENT
        return Kind.PERMANENT
    return Kind.TRANSIENT  # CircuitOpen, SessionUnavailable, and everything unknown


def remote_failed(error: BaseException) -> bool:
    """Whether ``error`` says ConnectyCube itself is failing (what the circuit breaker counts)."""
    if isinstance(error, _DOWN):
        return True
    return isinstance(error, ConnectyCubeError) and _malformed(error)


def unavailable(error: BaseException) -> bool:
    """Whether a frontend should be told "try again later" (the API's 503): ConnectyCube cannot
    answer now, its circuit is open, or no session could be had in time. A malformed answer is
    not: it is a broken promise of the protocol, which waiting does not mend for the caller."""
    return isinstance(error, (*_DOWN, SessionUnavailable, CircuitOpen))


#: Retry-After seconds of a 503 when ConnectyCube named none: long enough for a blip to pass,
#: short enough that a client retrying on it does not keep a user waiting.
UNAVAILABLE_RETRY_AFTER = 5


def retry_after(error: BaseException) -> int:
    """Seconds a frontend should wait after an :func:`unavailable` error: what ConnectyCube or the
    engine said, else :data:`UNAVAILABLE_RETRY_AFTER`."""
    seconds = getattr(error, "retry_after", None) or getattr(error, "retry_in", None)
    return max(1, int(seconds)) if seconds else UNAVAILABLE_RETRY_AFTER


def backoff_max() -> float:
    """The longest wait between two attempts (at least a second)."""
    return max(float(app_settings.RETRY_HORIZON) * BACKOFF_SHARE, 1.0)


def backoff(attempt: int) -> float:
    """Full-jitter exponential backoff for the n-th failed attempt (1-based), capped at
    :func:`backoff_max`."""
    ceiling = min(backoff_max(), BACKOFF_BASE * 2 ** min(attempt - 1, 64))
    return random.uniform(0, ceiling)  # noqa: S311


def _wait(error: BaseException, kind: Kind, attempts: int) -> float:
    """Seconds until the row is due again."""
    wait = backoff(attempts)
    if kind is Kind.BUSY:
        wait += 1.0  # the lease holder's push takes about this long
    if isinstance(error, RateLimited) and error.retry_after:
        wait = max(wait, float(error.retry_after))
    return min(wait, backoff_max())


@dataclass(frozen=True)
class Result:
    """What one push came to. ``outcome``: the push's own (``created``, ``updated`` …) or
    ``failed`` / ``retrying`` / ``busy`` / ``disabled``; ``countdown``: seconds the caller
    holds its retry as a task countdown (``None``: nothing to hold; the row is due for the
    sweep at ``next_attempt_at``, or not owed any more)."""

    outcome: str
    kind: Kind
    error: BaseException | None = None
    attempts: int = 0
    gave_up: bool = False
    countdown: float | None = None


def attempt(link_filter: Q, push: Callable[[], str], *, hold: bool = False) -> Result:
    """Run ``push`` (one user's push or delete) under the failure policy and the breaker.

    ``hold``: the caller can hold a short retry as a task countdown (a Celery task that is not
    eager); otherwise every retry is left to the sweep.
    """
    if not app_settings.SYNC_ENABLED:
        return Result(DISABLED, Kind.DONE)
    try:
        probe = breaker.probe_or_wait()
    except CircuitOpen as exc:
        return record(link_filter, exc, hold=hold)
    calls = breaker.calls_made()
    try:
        outcome = push()
    except Exception as exc:
        if isinstance(exc, DatabaseError):
            lease.reconnect()  # so that the failure can be recorded
        called = breaker.calls_made() > calls
        if remote_failed(exc):
            breaker.record_failure(probe=probe)
        elif called:
            breaker.record_success()  # ConnectyCube answered, if only to refuse
        elif probe:
            breaker.release_probe()
        return record(link_filter, exc, hold=hold)
    if breaker.calls_made() > calls:
        breaker.record_success()
    elif probe:
        breaker.release_probe()
    return Result(outcome, Kind.DONE)


def record(
    link_filter: Q, error: BaseException, *, hold: bool = False, permanent: bool = False
) -> Result:
    """Record a failed push on its row as the policy says, and what comes next.

    ``permanent``: the caller knows better than the error's kind (a conflict found outside a
    push); the row is marked ``failed`` at once.
    """
    kind = classify(error)
    permanent = permanent or kind in (Kind.PERMANENT, Kind.CONFLICT)
    counted = not isinstance(error, CircuitOpen)
    rows = CubeUser.objects.filter(link_filter)
    before = rows.values_list("attempts", flat=True).first()
    if before is None:  # no such link (a user deleted before it was ever linked)
        return Result(SKIPPED, kind, error)
    now = timezone.now()
    # While the circuit is open the breaker paces every row: due at once, but handed over by
    # the sweep only with its probe, and all together as soon as the probe succeeds.
    paced = isinstance(error, CircuitOpen) or (
        remote_failed(error) and breaker.is_open() is not None
    )
    wait = 0.0 if paced else _wait(error, kind, before + 1)
    held = hold and not paced and wait <= COUNTDOWN_MAX
    countdown = wait if held else None
    retry_at = now + timedelta(seconds=wait)
    message = redact(describe(error))
    updated = rows.record_failure(
        message,
        now=now,
        permanent=permanent,
        retry_at=retry_at,
        enqueued_at=retry_at if countdown is not None else None,
        horizon=timedelta(seconds=float(app_settings.RETRY_HORIZON)),
        count=counted,
    )
    link = rows.first()
    if not updated or link is None:
        # Not owed any more (pushed by another worker meanwhile, deleted, already failed):
        # nothing to retry, but said.
        logger.warning(
            "ConnectyCube sync of %s failed (%s) on a row no longer owed (%s): %s",
            link.external_id if link is not None else link_filter,
            kind.value,
            link.state if link is not None else "gone",
            message,
        )
        return Result(BUSY if kind is Kind.BUSY else FAILED, kind, error)
    if link.state == CubeUser.State.FAILED:
        logger.error("Giving up on ConnectyCube sync of %s: %s", link.external_id, message)
        user_sync_failed.send(CubeUser, link=link, error=error)
        return Result(FAILED, kind, error, link.attempts, gave_up=True)
    logger.warning(
        "ConnectyCube sync of %s failed (attempt %s, %s); due again in %.1f s: %s",
        link.external_id,
        link.attempts,
        kind.value,
        wait,
        message,
        exc_info=not isinstance(error, (ConnectyCubeError, SyncError)),
    )
    outcome = BUSY if kind is Kind.BUSY else RETRYING
    return Result(outcome, kind, error, link.attempts, countdown=countdown)
