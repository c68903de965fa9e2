"""Will pushes reach a worker: the Celery broker, a worker consuming the sync queue, and the
sweep in Celery beat.

The doctor inspects the Celery app the sync tasks are sent with, so it sees what the site sees
(the project's ``CELERY_*`` settings); what ``manage.py check`` also asks (``W002``, ``E010``,
``W011``) it answers with the same functions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from django_connectycube.checks.celery import (
    IN_PROCESS,
    NO_APP,
    SWEEP_TASK,
    broker_in_use,
    broker_scheme,
    broker_url,
    is_project_app,
    sweep_entries,
    sweep_warning,
    transport_error,
)
from django_connectycube.checks.doctor.context import DoctorContext
from django_connectycube.checks.doctor.findings import Finding, Status, duration, from_message
from django_connectycube.conf import app_settings

#: Seconds to wait for the workers' answers (a worker answers at once, even when busy).
REPLY_TIMEOUT = 2.0


def _connect(app: Any, timeout: float) -> Any:
    """A broker connection that tried once, for ``with``."""
    connection = app.connection_for_write()
    try:
        connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=timeout
        )
    except Exception:
        connection.release()
        raise
    return connection


def check_broker(ctx: DoctorContext) -> Finding:
    """The broker the sync tasks are published to accepts a connection."""
    app = ctx.celery_app
    if not is_project_app(app):
        return from_message("broker", NO_APP, Status.FAIL)
    if app.conf.task_always_eager:
        return Finding(
            "broker",
            Status.WARN,
            "task_always_eager is on: pushes run inside the process that saved the user, "
            "with no broker, no worker and no retries (fit for a demo only).",
            "Set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0), turn "
            "CELERY_TASK_ALWAYS_EAGER off and run a worker: `celery -A <project> worker`.",
        )
    url = broker_url(app)
    shown = maybe_sanitize_url(url) if url else "amqp://guest@localhost// (Celery's default)"
    details: dict[str, Any] = {"broker": shown, "transport": broker_scheme(url)}
    if details["transport"] in IN_PROCESS:
        return Finding(
            "broker",
            Status.WARN,
            f"The broker is {shown}: it lives inside one process, so a worker never receives "
            "the pushes this site sends.",
            "Set CELERY_BROKER_URL to Redis or RabbitMQ and run a worker.",
            details,
        )
    error = transport_error(app)
    if error is not None:
        return from_message("broker", error, Status.FAIL, **details)
    try:
        _connect(app, ctx.timeout).release()
    except Exception as exc:  # kombu raises transport-specific errors (OperationalError, OSError)
        return Finding(
            "broker",
            Status.FAIL,
            f"Cannot connect to {shown}: {exc}",
            "Start the broker or fix CELERY_BROKER_URL; until then changes wait in the database "
            "and the sweep hands them over once the broker is back.",
            details,
        )
    return Finding("broker", Status.OK, f"Connected to {shown}.", details=details)


def check_workers(ctx: DoctorContext) -> Finding:
    """A worker consumes the queue the sync tasks are sent to: asked over the broker, as
    ``celery inspect active_queues`` does. Without one every change waits as an owed row while
    the other checks look fine."""
    app = ctx.celery_app
    if not is_project_app(app) or not broker_in_use(app):
        return Finding("workers", Status.SKIP, "No broker is in use, so no worker to ask.")
    queue = app_settings.TASK_QUEUE or app.conf.task_default_queue
    timeout = min(ctx.timeout, REPLY_TIMEOUT)
    try:
        with _connect(app, ctx.timeout) as connection:
            inspect = app.control.inspect(timeout=timeout, connection=connection)
            replies = inspect.active_queues() or {}
    except Exception as exc:  # kombu raises transport-specific errors
        return Finding(
            "workers", Status.SKIP, f"Cannot ask the workers ({exc}); see the broker check."
        )
    consuming = sorted(
        node
        for node, queues in replies.items()
        if any(isinstance(q, dict) and q.get("name") == queue for q in queues or ())
    )
    details: dict[str, Any] = {"queue": queue, "answered": sorted(replies), "consuming": consuming}
    if consuming:
        message = f"{len(consuming)} worker(s) consume the queue {queue!r}: {', '.join(consuming)}."
        return Finding("workers", Status.OK, message, details=details)
    problem = (
        f"Workers answered ({', '.join(sorted(replies))}) but none consumes the queue {queue!r}"
        if replies
        else f"No Celery worker answered within {duration(timeout)}"
    )
    return Finding(
        "workers",
        Status.FAIL,
        f"{problem}: every change waits in the database (owed) until a worker takes it.",
        f"Start a worker that reads it: `celery -A <project> worker -Q {queue}` (under your "
        "process manager); the sweep hands the waiting changes over.",
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
    app = ctx.celery_app
    if not broker_in_use(app):
        return Finding("sweep_schedule", Status.SKIP, "No broker is in use, so no beat either.")
    warning = sweep_warning(app)
    if warning is not None:
        return from_message("sweep_schedule", warning, Status.WARN)
    entries = sweep_entries(app)
    if not entries:
        scheduler = app.conf.beat_scheduler
        message = f"Beat's scheduler is {scheduler}: a schedule it keeps elsewhere is not read."
        return Finding("sweep_schedule", Status.INFO, message, details={"scheduler": scheduler})
    name, entry = next(iter(entries.items()))
    return Finding(
        "sweep_schedule",
        Status.OK,
        f"{SWEEP_TASK} is scheduled as {name!r}, {_every(entry)} (beat must be running).",
        details={"entries": sorted(entries)},
    )
