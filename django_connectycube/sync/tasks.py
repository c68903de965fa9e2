"""Celery tasks: thin wrappers that run the sync engine under the failure policy.

* ``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-task leaves the message on the
  broker, and another worker runs it again (the sync engine makes that harmless).
* What a failure means, how long until the next attempt and when to give up is decided by
  :mod:`.policy` (the same for the sync command and the backfill). A retry due within
  ``policy.COUNTDOWN_MAX`` seconds is held by the broker as this task's countdown; a later one
  is a due time on the row, handed back to Celery by the sweep when it comes
  (:func:`.enqueue.sweep_dirty`, beside the code that publishes these tasks).
* With ``SYNC_ENABLED = False`` a task that is still delivered does nothing and leaves its row
  owed for when sync is switched back on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import Task, shared_task
from django.db import DatabaseError
from django.db.models import Q

from django_connectycube.client import ConnectyCubeError
from django_connectycube.sync import backfill_pool, lease, password_reset, policy, verification
from django_connectycube.sync import push as sync
from django_connectycube.sync.connection import shared_client

logger = logging.getLogger("django_connectycube")

__all__ = [
    "backfill_shard",
    "delete_remote_user",
    "push_batch",
    "push_user",
    "send_password_reset",
    "verify_links",
]

TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,  # the policy gives up by time (RETRY_HORIZON), recorded on the row
    "ignore_result": True,
}


#: Retries of a task whose failure could not be written (the database is unreachable); then
#: the sweep re-sends the row and its ``last_error`` says so.
DATABASE_RETRIES = 3


def _run(task: Task, func: Callable[[Any], str], arg: Any, link_filter: Q) -> str:
    try:
        result = policy.attempt(link_filter, lambda: func(arg), hold=not task.request.is_eager)
    except DatabaseError as exc:
        lease.reconnect()
        if task.request.is_eager or task.request.retries >= DATABASE_RETRIES:
            raise
        raise task.retry(countdown=policy.backoff(task.request.retries + 1), exc=exc) from exc
    if result.countdown is not None:
        raise task.retry(countdown=result.countdown, exc=result.error)
    return result.outcome


@shared_task(name="django_connectycube.push_user", **TASK_OPTIONS)
def push_user(self: Task, user_pk: Any) -> str:
    """Push the user's current state (one push however many saves queued it)."""
    return _run(self, sync.push_user, user_pk, Q(user_id=user_pk))


@shared_task(name="django_connectycube.delete_remote_user", **TASK_OPTIONS)
def delete_remote_user(self: Task, link_id: int) -> str:
    """Delete a deleted local user's ConnectyCube user (gone already counts as done)."""
    return _run(self, sync.delete_remote_user, link_id, Q(pk=link_id))


#: Threads a batch message's users are pushed with on its worker.
BATCH_CONCURRENCY = 4


@shared_task(
    name="django_connectycube.push_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def push_batch(task_name: str, args: list[Any]) -> dict[str, int]:
    """Run ``push_user`` (or ``delete_remote_user``) for each argument here, on this worker:
    what a process that saved many users in a moment, or a sweep, sent as one message, so no
    second broker hop re-publishes them one by one. Each runs under the failure policy; a
    failure's retry is a due time on its row, which the sweep hands over (the batch is never
    retried whole). Redelivered after its worker died, it runs again, which is harmless."""
    client = shared_client()
    if task_name == "push_user":
        counts = backfill_pool.push_many(args, client=client, concurrency=BATCH_CONCURRENCY)
    elif task_name == "delete_remote_user":
        counts = Counter(
            policy.attempt(Q(pk=pk), partial(sync.delete_remote_user, pk, client=client)).outcome
            for pk in args
        )
    else:
        raise ValueError(f"push_batch cannot run {task_name!r}")
    return dict(counts)


@shared_task(name="django_connectycube.backfill_shard", **TASK_OPTIONS)
def backfill_shard(self: Task, first_pk: Any, last_pk: Any, concurrency: int = 4) -> dict[str, int]:
    """Push the owed users with a pk in ``[first_pk, last_pk]``: one shard of
    ``connectycube_sync --all --distribute``, run by the one-process backfill engine.

    The owed record is the shard's state: redelivered after its worker died, it pushes what is
    still owed (rows the dead worker had leased come back once their lease ran out, as busy
    retries the sweep hands over). Failures stay on their rows, under the failure policy.
    """
    counts = backfill_pool.push_many(
        backfill_pool.owed_in_range(first_pk, last_pk),
        client=shared_client(),
        concurrency=min(max(int(concurrency), 1), 64),
    )
    logger.info(
        "Backfill shard %s..%s: %s",
        first_pk,
        last_pk,
        ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing owed",
    )
    return dict(counts)


@shared_task(name="django_connectycube.verify_links", ignore_result=True)
def verify_links(window: int = verification.WINDOW) -> dict[str, int]:
    """Celery beat's verification of the next ``window`` links against ConnectyCube: those
    whose remote user is gone (or not ours) are recorded and made owed, so the pushes the
    sweep hands out create them again (:mod:`.verification`)."""
    counts = verification.verify_window(window)
    return {
        "checked": counts["checked"],
        "drift": counts[verification.MISSING] + counts[verification.FOREIGN],
    }


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
    except (ConnectyCubeError, OSError) as exc:  # OSError: the mail relay did not answer
        if isinstance(exc, ConnectyCubeError) and policy.classify(exc) != policy.Kind.TRANSIENT:
            logger.error("ConnectyCube refused a password reset: %s", exc)
            return "failed"
        if self.request.retries >= RESET_MAX_RETRIES:
            logger.error(
                "Password reset e-mail dropped after %d retries: %s", RESET_MAX_RETRIES, exc
            )
            return "failed"
        raise self.retry(countdown=policy.backoff(self.request.retries + 1), exc=exc) from exc
