"""Have ConnectyCube's users drifted from our links: a remote that forgot them (a reset, a wiped
application), found by the background verification (:mod:`...verification`)?

Read from the rows alone: the verification records what it finds on them, so this check says
the same as the admin's health page, and fails while a drifted link waits for its repair.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from django_connectycube.admin.counts import bounded_count
from django_connectycube.checks.doctor.context import DoctorContext
from django_connectycube.checks.doctor.findings import Finding, Status, duration
from django_connectycube.sync import verification

__all__ = ["check_drift"]

TITLE = "Drift"
SCHEDULE = (
    'Add {"connectycube-verify": {"task": "django_connectycube.verify_links", "schedule": '
    "60.0}} to CELERY_BEAT_SCHEDULE and run beat, or run `manage.py connectycube_sync --repair`"
)


def _ago(when: Any) -> str:
    if when is None:
        return "never"
    return f"{duration((timezone.now() - when).total_seconds())} ago"


def check_drift(ctx: DoctorContext) -> Finding:
    """Links the verification found missing or not ours on ConnectyCube and no push has
    repaired yet (FAIL), and when the verification last ran."""
    try:
        drifted = verification.drifted()
        count = bounded_count(drifted)
        example = drifted.order_by("-drift_found_at").values_list("last_error", flat=True).first()
        scan = verification.last_run()
    except DatabaseError as exc:
        return Finding(
            "drift",
            TITLE,
            Status.FAIL,
            f"Cannot read the ConnectyCube user links: {exc}".strip(),
            "Check the database connection and run `manage.py migrate django_connectycube`.",
        )
    last_run = scan.last_run_at if scan is not None else None
    last_pass = scan.last_pass_at if scan is not None else None
    details = {
        "drifted": count.value,
        "last_verification": last_run.isoformat() if last_run else None,
        "last_full_pass": last_pass.isoformat() if last_pass else None,
    }
    when = f"last verification {_ago(last_run)}, last full pass {_ago(last_pass)}"
    if count.value:
        return Finding(
            "drift",
            TITLE,
            Status.FAIL,
            f"{count} link(s) drifted from ConnectyCube and not repaired yet ({when}); "
            f"latest: {example}",
            "They are owed a push that creates them again: check that a Celery worker and the "
            "sweep run, or push now with `manage.py connectycube_sync --repair`; a link that "
            "failed says why in the admin (ConnectyCube users, state failed).",
            details,
        )
    if last_run is None:
        return Finding(
            "drift",
            TITLE,
            Status.WARN,
            "No verification of the links against ConnectyCube has run: users a reset or "
            "wiped ConnectyCube application forgot would go unnoticed.",
            SCHEDULE + ".",
            details,
        )
    return Finding("drift", TITLE, Status.OK, f"No drift found ({when}).", details=details)
