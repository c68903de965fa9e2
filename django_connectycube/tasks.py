"""Celery tasks: thin wrappers over :mod:`.sync` that decide when to retry and when to give up.

* ``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-task leaves the message on the
  broker, and another worker runs it again (the sync engine makes that harmless).
* Transient failures (no answer, 5xx, 429, a lease held by another worker) retry with exponential
  backoff and full jitter; a 429 waits its ``Retry-After``. Every countdown is capped by
  ``TASK_BACKOFF_MAX``, which must stay below the broker's visibility timeout (Redis: 1 hour by
  default), or the broker would deliver the message a second time while it waits.
* Permanent failures (422, a conflict, a refused password) and the ``TASK_MAX_ATTEMPTS``-th
  transient one mark the row ``failed`` with the error kept: a dead letter shown in the admin.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.db.models import Q
from django.utils import timezone

from . import outbox, password_reset, sync
from .client import (
    ConnectyCubeError,
    RateLimited,
    ServerError,
    SessionExpired,
    TransportError,
)
from .conf import app_settings
from .models import CubeUser
from .sessions import SessionUnavailable

logger = logging.getLogger("django_connectycube")

__all__ = [
    "delete_remote_user",
    "push_avatar",
    "push_user",
    "send_password_reset",
    "sweep_dirty",
]

TRANSIENT: tuple[type[BaseException], ...] = (
    TransportError,
    ServerError,
    RateLimited,
    SessionExpired,
    SessionUnavailable,
)
BUSY_COUNTDOWN = (1.0, 5.0)

TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,  # the row's attempt counter is the cap; it survives redelivery
    "ignore_result": True,
}


def backoff(attempt: int) -> float:
    """Full-jitter exponential backoff for the n-th failed attempt (1-based)."""
    cap = float(app_settings.TASK_BACKOFF_MAX)
    return random.uniform(0, min(cap, float(app_settings.TASK_BACKOFF_BASE) * 2 ** (attempt - 1)))  # noqa: S311


def _run(task: Task, func: Callable[[Any], str], arg: Any, link_filter: Q) -> str:
    try:
        return func(arg)
    except sync.Busy as exc:
        if task.request.is_eager:
            time.sleep(0.25)  # eager retries run at once, ignoring the countdown
        raise task.retry(countdown=random.uniform(*BUSY_COUNTDOWN), exc=exc) from exc  # noqa: S311
    except TRANSIENT as exc:
        attempts, gave_up = sync.record_failure(link_filter, exc, permanent=False)
        if gave_up:
            return "failed"
        countdown = backoff(attempts)
        if isinstance(exc, RateLimited) and exc.retry_after:
            countdown = max(countdown, float(exc.retry_after))
        countdown = min(countdown, float(app_settings.TASK_BACKOFF_MAX))
        # The retry is in flight until it runs: keep the sweep from sending a second copy.
        due = timezone.now() + timedelta(seconds=countdown)
        CubeUser.objects.filter(link_filter).update(enqueued_at=due)
        raise task.retry(countdown=countdown, exc=exc) from exc
    except (ConnectyCubeError, sync.SyncConflict) as exc:
        sync.record_failure(link_filter, exc, permanent=True)
        return "failed"


@shared_task(name="django_connectycube.push_user", **TASK_OPTIONS)
def push_user(self: Task, user_pk: Any) -> str:
    """Push the user's current state (one push however many saves queued it)."""
    return _run(self, sync.push_user, user_pk, Q(user_id=user_pk))


@shared_task(name="django_connectycube.push_avatar", **TASK_OPTIONS)
def push_avatar(self: Task, user_pk: Any) -> str:
    """Upload and link the user's avatar if its content changed."""
    return _run(self, sync.push_avatar, user_pk, Q(user_id=user_pk))


@shared_task(name="django_connectycube.delete_remote_user", **TASK_OPTIONS)
def delete_remote_user(self: Task, link_id: int) -> str:
    """Delete a deleted local user's ConnectyCube user (gone already counts as done)."""
    return _run(self, sync.delete_remote_user, link_id, Q(pk=link_id))


@shared_task(name="django_connectycube.sweep_dirty", ignore_result=True)
def sweep_dirty(limit: int = 1000) -> int:
    """Re-enqueue owed rows nobody is working on; schedule it with Celery beat (every minute)."""
    return outbox.sweep(limit=limit)


#: Reset e-mails are retried this often (a relay or ConnectyCube hiccup), then dropped, logged.
RESET_MAX_RETRIES = 3


@shared_task(
    name="django_connectycube.send_password_reset",
    bind=True,
    ignore_result=True,
    max_retries=RESET_MAX_RETRIES,
)
def send_password_reset(
    self: Task, email: str, domain: str, site_name: str, use_https: bool
) -> str:
    """Send the reset e-mail ``password-reset/`` promised, outside the request."""
    try:
        return password_reset.send_reset_email(
            email, domain=domain, site_name=site_name, use_https=use_https
        )
    except (*TRANSIENT, OSError) as exc:  # OSError: the mail relay (smtplib) did not answer
        if self.request.retries >= RESET_MAX_RETRIES:
            logger.error(
                "Password reset e-mail dropped after %d retries: %s", RESET_MAX_RETRIES, exc
            )
            return "failed"
        raise self.retry(countdown=backoff(self.request.retries + 1), exc=exc) from exc
    except ConnectyCubeError as exc:
        logger.error("ConnectyCube refused a password reset: %s", exc)
        return "failed"
