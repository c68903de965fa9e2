"""The hand-off of owed work to Celery: after commit, and again by the sweep.

:mod:`.owed` records the work inside the saving transaction; Celery is only told after commit.
If the broker is down the row simply stays owed and :func:`sweep` hands it over later. This is
the only module that publishes the sync tasks (:mod:`.tasks`); the periodic sweep task lives
here with the sweep, so the tasks never import what enqueues them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import shared_task
from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from django_connectycube.conf import app_settings
from django_connectycube.models import CubeUser
from django_connectycube.sync import breaker, policy, tasks, unlinked
from django_connectycube.sync import push as sync
from django_connectycube.sync.publisher import Publisher

logger = logging.getLogger("django_connectycube")

__all__ = [
    "delete_after_commit",
    "enqueue_backfill",
    "enqueue_delete",
    "enqueue_push",
    "flush",
    "push_after_commit",
    "sweep",
    "sweep_dirty",
]


def _db(using: str | None) -> str:
    return using or router.db_for_write(CubeUser)


def _send(
    task_name: str,
    args: tuple[Any, ...],
    *,
    link_filter: Q,
    using: str | None,
    argsrepr: str | None = None,
) -> bool:
    task = getattr(tasks, task_name)
    options: dict[str, Any] = {"argsrepr": argsrepr} if argsrepr else {}
    if app_settings.TASK_QUEUE:
        options["queue"] = app_settings.TASK_QUEUE
    try:
        task.apply_async(args, **options)
    except Exception as exc:  # the broker is down or misconfigured: the sweep will retry
        logger.warning(
            "Could not enqueue %s%s: %s. The change is kept and the sweep will push it.",
            task_name,
            args if len(args) > 1 else f"({args[0]})",
            exc,
        )
        CubeUser.objects.using(_db(using)).filter(link_filter).update(enqueued_at=None)
        return False
    return True


def enqueue_push(user_pk: Any, *, using: str | None = None) -> bool:
    """Hand a push to Celery; on failure leave the row owed (and visible to the sweep at once)."""
    return _send("push_user", (_task_arg(user_pk),), link_filter=Q(user_id=user_pk), using=using)


def enqueue_delete(link_id: int, *, using: str | None = None) -> bool:
    """Hand a remote delete to Celery; on failure the tombstone stays owed."""
    return _send("delete_remote_user", (link_id,), link_filter=Q(pk=link_id), using=using)


def enqueue_backfill(ranges: Iterable[tuple[Any, Any]], *, concurrency: int) -> int:
    """Hand a backfill to Celery: one ``backfill_shard`` task per ``(first, last)`` user pk
    range; returns how many were sent. A broker error propagates (the caller says what to do):
    the users stay owed either way, so shards already sent and a second run never collide."""
    from django_connectycube.sync import tasks

    options = {"queue": app_settings.TASK_QUEUE} if app_settings.TASK_QUEUE else {}
    sent = 0
    for first, last in ranges:
        tasks.backfill_shard.apply_async(
            (_task_arg(first), _task_arg(last), concurrency), **options
        )
        sent += 1
    return sent


def _task_arg(pk: Any) -> Any:
    return pk if isinstance(pk, int | str) else str(pk)


#: Which link a task's argument names, for clearing ``enqueued_at`` when its publish fails.
_LINK_FIELD = {"push_user": "user_id", "delete_remote_user": "pk"}

#: Arguments in one ``push_batch`` message: few enough that the workers share a sweep's or a
#: burst's batches, many enough that the publishing process pays one publish for a crowd.
BATCH_MAX = 100


def _publish(task_name: str, args: list[Any], using: str | None) -> bool:
    """The publisher thread's (and the sweep's) send: one message for one argument, else
    ``push_batch`` messages a worker runs itself, so a burst of saves costs the saving process
    one publish per batch and no worker a second hop."""
    field = _LINK_FIELD[task_name]
    if len(args) == 1:
        return _send(task_name, (args[0],), link_filter=Q(**{field: args[0]}), using=using)
    sent = []
    for start in range(0, len(args), BATCH_MAX):
        chunk = args[start : start + BATCH_MAX]
        in_chunk = Q(**{f"{field}__in": chunk})
        # Celery's own repr of a long list costs more than the rest of the publish, which holds
        # the interpreter lock meanwhile.
        argsrepr = f"({task_name!r}, <{len(chunk)} ids from {chunk[0]!r}>)"
        sent.append(
            _send(
                "push_batch",
                (task_name, chunk),
                link_filter=in_chunk,
                using=using,
                argsrepr=argsrepr,
            )
        )
    return all(sent)


def _close_thread_connections() -> None:
    # The publisher thread only touches the database when a publish failed; don't keep an idle
    # connection per process open for that (it would also block dropping a test database).
    connections.close_all()


_publisher = Publisher(_publish, after_failure=_close_thread_connections)


def _publish_in_background() -> bool:
    """``ENQUEUE == "background"``, unless Celery runs tasks eagerly (in-process, in order)."""
    if app_settings.ENQUEUE != "background":
        return False
    return not tasks.push_user.app.conf.task_always_eager


def push_after_commit(user_pk: Any, *, using: str | None = None) -> None:
    """The on-commit callback of a save: publish ``push_user`` now or via the background thread.

    In background mode this only queues, so the request does not pay for the broker round trip.
    """
    if _publish_in_background():
        _publisher.submit("push_user", _task_arg(user_pk), using)
    else:
        enqueue_push(user_pk, using=using)


def delete_after_commit(link_id: int, *, using: str | None = None) -> None:
    """The on-commit callback of a delete: like :func:`push_after_commit`, for the tombstone."""
    if _publish_in_background():
        _publisher.submit("delete_remote_user", link_id, using)
    else:
        enqueue_delete(link_id, using=using)


def flush(timeout: float = 5.0) -> bool:
    """Wait until every message this process queued for the background publisher was published
    (or failed, leaving its row to the sweep); False if that took longer than ``timeout``.

    For tests and scripts that must see the publish happen; it also runs at interpreter exit.
    """
    return _publisher.flush(timeout)


def sweep(*, using: str | None = None, limit: int = 1000) -> int:
    """Hand owed rows that are due and not in flight to Celery; returns how many were sent.

    Users found without a link (:mod:`.unlinked`: a window or two of the user table per run)
    are linked first, and handed over with the rest. Never enqueued (the broker was down) comes
    first, then the longest in flight. A row waiting for a retry is left alone until its
    ``next_attempt_at``. While the circuit breaker is open nothing is sent, and a sweep is
    scheduled for the end of the pause; when the breaker is due for a probe, the sweep pushes
    one row itself and, if ConnectyCube answered, hands over the backlog in the same run. With
    ``SYNC_ENABLED = False`` nothing is done at all. The first message the broker refuses ends
    the run: the rows not sent stay due for the next one.
    """
    if not app_settings.SYNC_ENABLED:
        return 0
    db = _db(using)
    unlinked.sweep_step(using=db)
    now = timezone.now()
    stale = now - timedelta(seconds=app_settings.SWEEP_AFTER)
    if breaker.is_open() is not None or (breaker.half_open() and not _probe(db, now, stale)):
        _wake_at_probe()
        return 0
    claimed = _claim(db, now, stale, limit)
    batches = _sweep_batches(claimed)
    sent = 0
    for number, (task_name, args) in enumerate(batches):
        if not _publish(task_name, args, db):
            for name, later in batches[number + 1 :]:
                lookup = {f"{_LINK_FIELD[name]}__in": later, "enqueued_at": now}
                CubeUser.objects.using(db).filter(**lookup).update(enqueued_at=None)
            return sent
        sent += len(args)
    return sent


def _probe(db: str, now: datetime, stale: datetime) -> bool:
    """Push one due row here, as the breaker's probe; whether the circuit is closed now (so the
    backlog may follow at once instead of a message and a tick later)."""
    for pk, user_id, state in _claim(db, now, stale, 1):
        if state == CubeUser.State.DELETING or user_id is None:
            policy.attempt(Q(pk=pk), partial(sync.delete_remote_user, pk))
        else:
            policy.attempt(Q(user_id=user_id), partial(sync.push_user, user_id))
    return breaker.is_open() is None and not breaker.half_open()


def _wake_at_probe() -> None:
    """Schedule a sweep for the end of the breaker's pause (one per pause across processes), so
    its probe goes out then, not on beat's next tick."""
    if tasks.push_user.app.conf.task_always_eager:
        return
    wait = breaker.claim_wakeup()
    if wait is None:
        return
    options = {"queue": app_settings.TASK_QUEUE} if app_settings.TASK_QUEUE else {}
    try:
        sweep_dirty.apply_async(countdown=wait, **options)
    except Exception as exc:  # the broker is down: beat's next sweep probes instead
        logger.warning("Could not schedule the circuit breaker's probe: %s", exc)


def _sweep_batches(claimed: list[tuple[Any, Any, str]]) -> list[tuple[str, list[Any]]]:
    """The claimed rows as ``(task, arguments)`` batches of at most :data:`BATCH_MAX`, deletes
    first: each batch is one message (a ``push_batch`` a worker runs), so a sweep of many rows
    costs the beat process a publish per batch, not one per row."""
    deletes: list[Any] = []
    pushes: list[Any] = []
    for pk, user_id, state in claimed:
        if state == CubeUser.State.DELETING or user_id is None:
            deletes.append(pk)
        else:
            pushes.append(_task_arg(user_id))
    return [
        (task_name, args[start : start + BATCH_MAX])
        for task_name, args in (("delete_remote_user", deletes), ("push_user", pushes))
        for start in range(0, len(args), BATCH_MAX)
    ]


def _claim(db: str, now: datetime, stale: datetime, limit: int) -> list[tuple[Any, Any, str]]:
    """Take up to ``limit`` due rows in one ``UPDATE``, so that two sweeps (beat and the
    command) never both enqueue a row: the rows are read ``FOR UPDATE SKIP LOCKED`` where the
    database has it (a racing sweep skips them, then finds them in flight); SQLite runs one
    writing transaction at a time."""
    due = CubeUser.objects.using(db).due(now, stale)
    with transaction.atomic(using=db):
        if connections[db].features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        rows = list(due.values_list("pk", "user_id", "state")[:limit])
        if rows:
            CubeUser.objects.using(db).filter(pk__in=[row[0] for row in rows]).mark_enqueued(
                now, lost_before=stale, note=lost_note()
            )
    return rows


def lost_note() -> str:
    """The ``last_error`` of a row the sweep re-sends because no worker recorded an outcome."""
    return (
        f"re-sent: no answer from a worker for {float(app_settings.SWEEP_AFTER):g} s (it "
        "stopped or was killed, lost its database connection, or its message was lost); "
        "see the worker's log"
    )


@shared_task(name="django_connectycube.sweep_dirty", ignore_result=True)
def sweep_dirty(limit: int = 1000) -> int:
    """Hand owed rows that are due and not in flight to the workers; schedule it with Celery
    beat (every minute)."""
    return sweep(limit=limit)
