"""``manage.py connectycube_doctor``'s checks: is this site set up to mirror users to its
ConnectyCube application?

Each check is a small function ``check(ctx) -> Finding`` over a shared
:class:`~.context.DoctorContext`; :func:`run_checks` runs them in order and turns any exception a
check did not expect into a FAIL finding, so the doctor itself never ends in a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django_connectycube.checks.doctor.application import check_admin_api_key, check_v1_users_api
from django_connectycube.checks.doctor.connection import check_clock, check_credentials
from django_connectycube.checks.doctor.context import DoctorContext
from django_connectycube.checks.doctor.drift import check_drift
from django_connectycube.checks.doctor.findings import Finding, Status, render_json, render_text
from django_connectycube.checks.doctor.password_secret import check_password_secret
from django_connectycube.checks.doctor.sync_health import check_sync_health
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
    "render_json",
    "render_text",
    "run_checks",
]

logger = logging.getLogger("django_connectycube")

Check = Callable[[DoctorContext], Finding]

#: In order: the credentials check creates the session the later remote checks reuse.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("credentials", check_credentials),
    ("clock", check_clock),
    ("v1_users_api", check_v1_users_api),
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
                        name.replace("_", " ").capitalize(),
                        Status.FAIL,
                        f"The check could not run: {type(exc).__name__}: {exc}",
                        "Fix what the message names; if it looks like a bug in "
                        "django-connectycube, report it with this line.",
                    )
                )
    finally:
        ctx.close()
    return findings
