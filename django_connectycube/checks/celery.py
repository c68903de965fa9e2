"""What the project's Celery app is set up to do, read by the system checks and the doctor alike.

``manage.py check`` and ``manage.py connectycube_doctor`` ask the same questions (is there a
project app, will tasks leave the process, can the broker's transport load, is the sweep in
beat); answering them in one place keeps the two from disagreeing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "IN_PROCESS",
    "SWEEP_TASK",
    "TRANSPORT_PACKAGES",
    "VERIFY_TASK",
    "broker_in_use",
    "broker_scheme",
    "broker_url",
    "configured_celery_app",
    "reads_beat_schedule",
    "sweep_entries",
    "transport_problem",
]

#: The registered name of :func:`django_connectycube.sync.enqueue.sweep_dirty`.
SWEEP_TASK = "django_connectycube.sweep_dirty"
#: The registered name of :func:`django_connectycube.sync.tasks.verify_links`.
VERIFY_TASK = "django_connectycube.verify_links"

#: Python packages each transport needs, imported before connecting (kombu's Redis transport
#: imports ``redis`` lazily and would only fail on the first publish).
TRANSPORT_PACKAGES: dict[str, tuple[str, ...]] = {
    "redis": ("redis",),
    "rediss": ("redis",),
    "sentinel": ("redis",),
    "amqp": ("amqp",),
    "amqps": ("amqp",),
    "pyamqp": ("amqp",),
}

#: Brokers that live inside one process: a separate worker never sees what is sent there.
IN_PROCESS = ("memory",)


def configured_celery_app() -> Any | None:
    """The Celery app the project created, or ``None`` if there is only Celery's fallback.

    Celery creates a fallback app named ``"default"`` on first use when the project made none;
    the current app is thread-local, so every app ever created is looked at, not only it.
    """
    from celery import _state

    current = _state._tls.current_app
    if current is not None and current.main != "default":
        return current
    for app in _state._get_active_apps():
        if app.main and app.main != "default":
            return app
    return None


def broker_url(app: Any) -> str:
    """The URL tasks are published to (``""``: Celery's default, AMQP on localhost)."""
    return str(app.conf.broker_url or app.conf.broker_write_url or "")


def broker_scheme(url: str) -> str:
    """The transport name of a broker URL (``amqp`` for Celery's default)."""
    scheme = url.split("://", 1)[0] if "://" in url else url
    return scheme.split("+", 1)[0].lower() or "amqp"


def broker_in_use(app: Any) -> bool:
    """False when tasks never leave this process (eager mode or an in-memory broker)."""
    if app.conf.task_always_eager:
        return False
    return broker_scheme(broker_url(app)) not in IN_PROCESS


def transport_problem(scheme: str) -> str | None:
    """Why the transport for ``scheme`` cannot publish here, or ``None`` when it can load.

    Imports kombu's transport module and the client packages it imports lazily, without
    connecting: a missing package would otherwise surface only as a warning on the first save.
    """
    from kombu.transport import resolve_transport

    problems = []
    for package in TRANSPORT_PACKAGES.get(scheme, ()):
        try:
            importlib.import_module(package)
        except ImportError as exc:
            problems.append(f"{package} ({exc})")
    if problems:
        return f"needs Python packages that do not import: {', '.join(problems)}"
    try:
        resolve_transport(scheme)
    except (ImportError, KeyError, ValueError) as exc:
        return f"cannot be loaded: {exc}"
    return None


def sweep_entries(app: Any, task: str = SWEEP_TASK) -> dict[str, Any]:
    """The ``beat_schedule`` entries that run the sweep (or ``task``), by entry name."""
    schedule = app.conf.beat_schedule or {}
    return {
        name: entry
        for name, entry in schedule.items()
        if isinstance(entry, dict) and entry.get("task") == task
    }


def reads_beat_schedule(app: Any) -> bool:
    """Whether beat runs ``beat_schedule`` (a scheduler keeping its schedule in a database,
    such as django-celery-beat's, is invisible from settings)."""
    return "celery.beat" in str(app.conf.beat_scheduler or "")
