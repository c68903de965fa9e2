"""``manage.py connectycube_doctor``: is this site set up to mirror users to its ConnectyCube
application?

It first reports what ``manage.py check`` says of the app's settings, by running the same
registered checks; then what only it can learn: whether ConnectyCube answers and accepts the
credentials, the application's dashboard switches, the broker and its workers, and the links'
health. Each check is ``check(ctx) -> Finding`` over a shared :class:`~.context.DoctorContext`;
:func:`run_checks` turns any exception a check did not expect into a FAIL finding, so the
doctor itself never ends in a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.conf import settings
from django.core.checks import run_checks as run_system_checks

from django_connectycube.checks.celery import CELERY_IDS
from django_connectycube.checks.configuration import CHECK_TAG
from django_connectycube.checks.doctor.application import check_admin_api_key, check_users_api
from django_connectycube.checks.doctor.connection import check_clock, check_credentials
from django_connectycube.checks.doctor.context import DoctorContext
from django_connectycube.checks.doctor.findings import Finding, Status, render_json, render_text
from django_connectycube.checks.doctor.password_secret import check_password_secret
from django_connectycube.checks.doctor.sync_health import check_drift, check_sync_health
from django_connectycube.checks.doctor.worker import (
    check_broker,
    check_sweep_schedule,
    check_workers,
)

__all__ = [
    "CHECKS",
    "Check",
    "DoctorContext",
    "Finding",
    "Status",
    "check_system",
    "render_json",
    "render_text",
    "run_checks",
]

logger = logging.getLogger("django_connectycube")

Check = Callable[[DoctorContext], Finding]


def check_system(ctx: DoctorContext) -> Finding:
    """The app's registered system checks, as ``manage.py check --tag connectycube`` runs them
    (silenced ids left out; the Celery ones are the broker and sweep findings' business)."""
    silenced = set(settings.SILENCED_SYSTEM_CHECKS) | CELERY_IDS
    found = [m for m in run_system_checks(tags=[CHECK_TAG]) if m.id not in silenced]
    details = {"messages": [{"id": m.id, "message": m.msg, "hint": m.hint} for m in found]}
    if not found:
        return Finding("settings", Status.OK, "manage.py check finds nothing to fix.")
    errors = any(m.is_serious() for m in found)
    return Finding(
        "settings",
        Status.FAIL if errors else Status.WARN,
        " ".join(f"{m.id}: {m.msg}" for m in found),
        "Run `manage.py check --tag connectycube` for each message's hint.",
        details,
    )


#: In order: the credentials check creates the session the later remote checks reuse.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("settings", check_system),
    ("credentials", check_credentials),
    ("clock", check_clock),
    ("users_api", check_users_api),
    ("admin_api_key", check_admin_api_key),
    ("password_secret", check_password_secret),
    ("broker", check_broker),
    ("workers", check_workers),
    ("sweep_schedule", check_sweep_schedule),
    ("sync_health", check_sync_health),
    ("drift", check_drift),
)


def run_checks(ctx: DoctorContext, checks: Sequence[tuple[str, Check]] = CHECKS) -> list[Finding]:
    """Every check's finding; the context's session is ended afterwards."""
    findings = []
    try:
        for name, check in checks:
            try:
                findings.append(check(ctx))
            except Exception as exc:  # a check must report, never crash the report
                logger.debug("doctor check %s raised", name, exc_info=True)
                findings.append(
                    Finding(
                        name,
                        Status.FAIL,
                        f"The check could not run: {type(exc).__name__}: {exc}",
                        "Fix what the message names; if it looks like a bug in "
                        "django-connectycube, report it with this line.",
                    )
                )
    finally:
        ctx.close()
    return findings
