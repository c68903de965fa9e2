"""Will pushes reach a worker: the Celery broker, a worker consuming the sync queue, and the
sweep in Celery beat.

The doctor inspects the Celery app the sync tasks are sent with, so it sees what the site sees
(the project's ``CELERY_*`` settings), not a guess from Django settings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from django_connectycube.checks.celery import (
    IN_PROCESS,
    SWEEP_TASK,
    broker_in_use,
    broker_scheme,
    broker_url,
    reads_beat_schedule,
    sweep_entries,
    transport_problem,
)
from django_connectycube.checks.doctor.context import DoctorContext
from django_connectycube.checks.doctor.findings import Finding, Status, duration
from django_connectycube.conf import app_settings

__all__ = ["SWEEP_TASK", "check_broker", "check_sweep_schedule", "check_workers", "sweep_entries"]

BROKER = "Celery broker"
WORKERS = "Celery workers"

#: Seconds to wait for the workers' answers (a worker answers at once, even when busy).
REPLY_TIMEOUT = 2.0


def check_broker(ctx: DoctorContext) -> Finding:
    """The broker the sync tasks are published to accepts a connection."""
    app = ctx.celery_app
    if app.main in (None, "default"):
        return Finding(
            "broker",
            BROKER,
            Status.FAIL,
            "The project has no Celery app (connectycube.W002): the sync tasks go to Celery's "
            "fallback app and its default broker, which no worker of yours reads.",
            "Create one (proj/celery.py with `app.config_from_object('django.conf:settings', "
            "namespace='CELERY')`) and import it in proj/__init__.py.",
        )
    if app.conf.task_always_eager:
        return Finding(
            "broker",
            BROKER,
            Status.WARN,
            "task_always_eager is on: pushes run inside the process that saved the user, "
            "with no broker, no worker and no retries (fit for a demo only).",
            "Set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0), turn "
            "CELERY_TASK_ALWAYS_EAGER off and run a worker: `celery -A <project> worker`.",
        )
    url = broker_url(app)
    shown = maybe_sanitize_url(url) if url else "amqp://guest@localhost// (Celery's default)"
    scheme = broker_scheme(url)
    if scheme in IN_PROCESS:
        return Finding(
            "broker",
            BROKER,
            Status.WARN,
            f"The broker is {shown}: it lives inside one process, so a worker never receives "
            "the pushes this site sends.",
            "Set CELERY_BROKER_URL to Redis or RabbitMQ and run a worker.",
            {"broker": shown},
        )
    details: dict[str, Any] = {"broker": shown, "transport": scheme}
    problem = transport_problem(scheme)
    if problem:
        return Finding(
            "broker",
            BROKER,
            Status.FAIL,
            f"The {scheme} transport {problem}.",
            "Install them in this environment (Redis: `pip install django-connectycube[redis]`).",
            details,
        )
    try:
        connection = app.connection_for_write()
    except ImportError as exc:
        return Finding(
            "broker",
            BROKER,
            Status.FAIL,
            f"The {scheme} transport cannot be loaded: {exc}.",
            "Install the package the message names in this environment.",
            details,
        )
    try:
        connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=ctx.timeout
        )
    except Exception as exc:  # kombu raises transport-specific errors (OperationalError, OSError)
        return Finding(
            "broker",
            BROKER,
            Status.FAIL,
            f"Cannot connect to {shown}: {exc}",
            "Start the broker or fix CELERY_BROKER_URL; until then changes wait in the database "
            "and the sweep hands them over once the broker is back.",
            details,
        )
    finally:
        connection.release()
    return Finding("broker", BROKER, Status.OK, f"Connected to {shown}.", details=details)


def check_workers(ctx: DoctorContext) -> Finding:
    """A worker consumes the queue the sync tasks are sent to: asked over the broker, as
    ``celery inspect active_queues`` does. Without one every change waits as an owed row while
    the other checks look fine."""
    app = ctx.celery_app
    if app.main in (None, "default") or not broker_in_use(app):
        return Finding(
            "workers", WORKERS, Status.SKIP, "No broker is in use, so there is no worker to ask."
        )
    queue = app_settings.TASK_QUEUE or app.conf.task_default_queue
    timeout = min(ctx.timeout, REPLY_TIMEOUT)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=ctx.timeout
            )
            inspect = app.control.inspect(timeout=timeout, connection=connection)
            replies = inspect.active_queues() or {}
    except Exception as exc:  # kombu raises transport-specific errors
        return Finding(
            "workers",
            WORKERS,
            Status.SKIP,
            f"Cannot ask the workers over the broker ({exc}); the broker check says why.",
        )
    consuming = sorted(
        node
        for node, queues in replies.items()
        if any(isinstance(q, dict) and q.get("name") == queue for q in queues or ())
    )
    details: dict[str, Any] = {"queue": queue, "answered": sorted(replies), "consuming": consuming}
    if consuming:
        return Finding(
            "workers",
            WORKERS,
            Status.OK,
            f"{len(consuming)} worker(s) consume the queue {queue!r}: {', '.join(consuming)}.",
            details=details,
        )
    problem = (
        f"Workers answered ({', '.join(sorted(replies))}) but none consumes the queue {queue!r}"
        if replies
        else f"No Celery worker answered within {duration(timeout)}"
    )
    return Finding(
        "workers",
        WORKERS,
        Status.FAIL,
        f"{problem}: the sync tasks are sent there, so every change waits in the database "
        "(owed) until a worker takes it.",
        f"Start a worker that reads it: `celery -A <project> worker -Q {queue}` (under your "
        "process manager, restarted when it dies); the sweep hands the waiting changes over.",
        details,
    )


def _every(entry: dict[str, Any]) -> str:
    value = entry.get("schedule")
    value = getattr(value, "run_every", value)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)):
        return f"every {duration(value)}"
    return f"on {value}"


def check_sweep_schedule(ctx: DoctorContext) -> Finding:
    """The sweep that re-sends pushes a broker or worker outage lost is in ``beat_schedule``."""
    title = "Sweep in beat"
    app = ctx.celery_app
    if not broker_in_use(app):
        return Finding(
            "sweep_schedule",
            title,
            Status.SKIP,
            "No broker is in use, so there is no beat to schedule the sweep in.",
        )
    entries = sweep_entries(app)
    if entries:
        name, entry = next(iter(entries.items()))
        return Finding(
            "sweep_schedule",
            title,
            Status.OK,
            f"{SWEEP_TASK} is scheduled as {name!r}, {_every(entry)} (beat must be running).",
            details={"entries": sorted(entries)},
        )
    scheduler = str(app.conf.beat_scheduler or "")
    note = ""
    if not reads_beat_schedule(app):
        note = f" The beat scheduler is {scheduler}; a schedule kept in a database is not read."
    return Finding(
        "sweep_schedule",
        title,
        Status.WARN,
        f"{SWEEP_TASK} is not in the Celery beat schedule: a push lost to a broker or worker "
        f"outage stays owed until something sweeps.{note}",
        'Add {"connectycube-sweep": {"task": "django_connectycube.sweep_dirty", "schedule": '
        "60.0}} to CELERY_BEAT_SCHEDULE and run `celery -A <project> beat`, or run "
        "`manage.py connectycube_sync --dirty` from cron.",
        {"scheduler": scheduler},
    )
