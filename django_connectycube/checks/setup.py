"""System checks of the project's wiring around the app: URLs, the broker's transport, beat.

Each guards a failure a fresh project met silently: a reset request answered 202 whose e-mail
was never sent, a warning on every save because the broker's transport could not load, changes
lost to a broker outage that nothing swept up. Ids are stable (see :mod:`.checks`):

- ``connectycube.E010``: the Celery broker's transport (or a package it needs) does not import.
- ``connectycube.W010``: the API's password reset is mounted but Django's
  ``password_reset_confirm`` URL, which the reset e-mail links to, is not.
- ``connectycube.W011``: a broker is in use but the sweep is not in the Celery beat schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.urls import NoReverseMatch, reverse
from kombu.utils.url import maybe_sanitize_url

from django_connectycube.checks.celery import (
    SWEEP_TASK,
    broker_in_use,
    broker_scheme,
    broker_url,
    configured_celery_app,
    reads_beat_schedule,
    sweep_entries,
    transport_problem,
)
from django_connectycube.checks.configuration import CHECK_TAG
from django_connectycube.conf import ConfigurationError, app_settings

__all__ = ["check_broker_transport", "check_password_reset_urls", "check_sweep_in_beat"]

#: The URL name Django's reset e-mail template links to.
RESET_CONFIRM_URL = "password_reset_confirm"


def _reverses(name: str, **kwargs: Any) -> bool:
    try:
        reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        return False
    return True


@register(Tags.urls, CHECK_TAG)
def check_password_reset_urls(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """The reset e-mail's link must be buildable, or the worker fails and nobody is told."""
    if not _reverses("connectycube:password-reset"):
        return []  # the API is not mounted: nothing sends reset e-mails
    try:
        options = app_settings.PASSWORD_RESET_OPTIONS or {}
    except ConfigurationError:
        return []  # reported by check_settings
    if isinstance(options, dict) and options.get("email_template_name"):
        return []  # the project's own template decides where the link points
    if _reverses(RESET_CONFIRM_URL, uidb64="MQ", token="set-password"):  # noqa: S106
        return []
    return [
        Warning(
            f"The API's password reset is mounted, but the URL {RESET_CONFIRM_URL!r} that "
            "Django's reset e-mail links to cannot be reversed: every reset request is "
            "answered 202 and no e-mail is sent.",
            hint="Mount Django's PasswordResetConfirmView as password_reset_confirm (and "
            "PasswordResetCompleteView as password_reset_complete), as the README's "
            "Quickstart does, or set "
            'CONNECTYCUBE["PASSWORD_RESET_OPTIONS"]["email_template_name"] to a template '
            "of yours.",
            id="connectycube.W010",
        )
    ]


@register(Tags.compatibility, CHECK_TAG)
def check_broker_transport(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """The broker's transport must import here, or every save only logs a warning."""
    app = configured_celery_app()
    if app is None or not broker_in_use(app):
        return []
    url = broker_url(app)
    scheme = broker_scheme(url)
    problem = transport_problem(scheme)
    if problem is None:
        return []
    shown = maybe_sanitize_url(url) if url else "Celery's default (amqp://localhost)"
    return [
        Error(
            f"The Celery broker {shown} uses the {scheme} transport, which {problem}: no sync "
            "task can be sent (each save logs a warning and waits for the sweep).",
            hint="Install the transport's packages in this environment, for Redis: "
            "pip install 'django-connectycube[redis]' (celery[redis]).",
            id="connectycube.E010",
        )
    ]


@register(Tags.compatibility, CHECK_TAG)
def check_sweep_in_beat(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """With a broker, a push lost to an outage is only re-sent by the sweep, run by beat."""
    app = configured_celery_app()
    if app is None or not broker_in_use(app) or not reads_beat_schedule(app):
        return []
    if sweep_entries(app):
        return []
    return [
        Warning(
            f"A Celery broker is configured but {SWEEP_TASK} is not in the beat schedule: a "
            "change whose task a broker or worker outage lost stays owed until something sweeps.",
            hint='Add {"connectycube-sweep": {"task": "django_connectycube.sweep_dirty", '
            '"schedule": 60.0}} to CELERY_BEAT_SCHEDULE and run `celery -A <project> beat`; '
            "if cron runs `manage.py connectycube_sync --dirty` instead, silence this id.",
            id="connectycube.W011",
        )
    ]
