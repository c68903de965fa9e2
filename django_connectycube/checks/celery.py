"""The project's Celery app as the sync needs it, and its system checks (``W002``, ``E010``,
``W011``).

``manage.py check`` and ``manage.py connectycube_doctor`` ask the same questions (is there a
project app, will tasks leave the process, can the broker's transport load, is the sweep in
beat): the doctor calls the functions below with the app it inspects, so the two never disagree.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from kombu.utils.url import maybe_sanitize_url

from django_connectycube.checks.configuration import CHECK_TAG

#: The registered name of :func:`django_connectycube.sync.enqueue.sweep_dirty`.
SWEEP_TASK = "django_connectycube.sweep_dirty"

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
    if current is not None and is_project_app(current):
        return current
    return next((app for app in _state._get_active_apps() if is_project_app(app)), None)


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


def sweep_entries(app: Any) -> dict[str, Any]:
    """The ``beat_schedule`` entries that run the sweep, by entry name."""
    schedule = app.conf.beat_schedule or {}
    return {
        name: entry
        for name, entry in schedule.items()
        if isinstance(entry, dict) and entry.get("task") == SWEEP_TASK
    }


def reads_beat_schedule(app: Any) -> bool:
    """Whether beat runs ``beat_schedule`` (a scheduler keeping its schedule in a database,
    such as django-celery-beat's, is invisible from settings)."""
    return "celery.beat" in str(app.conf.beat_scheduler or "")


def is_project_app(app: Any) -> bool:
    """Whether ``app`` is one the project made, not Celery's nameless fallback."""
    return app.main not in (None, "default")


#: What the doctor's broker and sweep findings report, so its settings finding leaves them out.
CELERY_IDS = frozenset({"connectycube.W002", "connectycube.E010", "connectycube.W011"})

NO_APP = Warning(
    "No Celery app is configured, so user changes cannot be pushed to ConnectyCube in the "
    "background.",
    hint="Create a Celery app in your project (proj/celery.py) and import it in "
    "proj/__init__.py, as in Celery's 'First steps with Django' guide.",
    id="connectycube.W002",
)


def transport_error(app: Any) -> Error | None:
    """``E010``: the broker's transport must import here, or every save only logs a warning."""
    if not broker_in_use(app):
        return None
    url = broker_url(app)
    scheme = broker_scheme(url)
    problem = transport_problem(scheme)
    if problem is None:
        return None
    shown = maybe_sanitize_url(url) if url else "Celery's default (amqp://localhost)"
    return Error(
        f"The Celery broker {shown} uses the {scheme} transport, which {problem}: no sync task "
        "can be sent (each save logs a warning and waits for the sweep).",
        hint="Install the transport's packages here; for Redis: "
        "pip install 'django-connectycube[redis]'.",
        id="connectycube.E010",
    )


def sweep_warning(app: Any) -> Warning | None:
    """``W011``: with a broker, a push lost to an outage is only re-sent by the sweep in beat."""
    if not broker_in_use(app) or not reads_beat_schedule(app) or sweep_entries(app):
        return None
    return Warning(
        f"A Celery broker is configured but {SWEEP_TASK} is not in the beat schedule: a change "
        "whose task an outage lost stays owed until something sweeps.",
        hint='Add {"connectycube-sweep": {"task": "django_connectycube.sweep_dirty", '
        '"schedule": 60.0}} to CELERY_BEAT_SCHEDULE and run `celery -A <project> beat`; if '
        "cron runs `manage.py connectycube_sync --dirty` instead, silence this id.",
        id="connectycube.W011",
    )


@register(Tags.compatibility, CHECK_TAG)
def check_celery(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Only Celery's fallback app (``W002``), a transport that cannot load (``E010``), no sweep
    in beat (``W011``)."""
    app = configured_celery_app()
    if app is None:
        return [NO_APP]
    return [m for m in (transport_error(app), sweep_warning(app)) if m is not None]
