"""Is mirroring keeping up: dead letters, and how long the oldest owed change has waited.

Read from the ``CubeUser`` rows alone, so it reports the same thing whether or not a worker or
broker is running; it is the place to look when the other checks pass but users are missing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import DatabaseError
from django.db.models import Min
from django.utils import timezone

from django_connectycube.admin.counts import BoundedCount, bounded_count
from django_connectycube.checks.doctor.context import DoctorContext
from django_connectycube.checks.doctor.findings import Finding, Status, duration
from django_connectycube.conf import app_settings
from django_connectycube.models import CubeUser

__all__ = ["check_sync_health", "stale_after"]

TITLE = "Sync health"


def stale_after() -> timedelta:
    """How long an owed change may wait before it counts as stuck: three sweep periods, i.e.
    the sweep had time to re-send it twice and a worker to push it."""
    return timedelta(seconds=3 * float(app_settings.SWEEP_AFTER))


def check_sync_health(ctx: DoctorContext) -> Finding:
    """Counts of rows per state (bounded, as on the admin's health page: exact up to a cap,
    then an estimate), failed rows, and the age of the oldest owed change.

    A row has no "owed since" column; its ``updated_at`` moves on every change and every failed
    attempt, so the age reported is a lower bound: the change has waited at least that long.
    """
    try:
        # Each state's count reads at most admin_counts.CAP rows, as the admin's health page.
        counts = {
            state: bounded_count(CubeUser.objects.filter(state=state))
            for state, _ in CubeUser.State.choices
        }
        oldest = CubeUser.objects.owed().aggregate(oldest=Min("updated_at"))["oldest"]
    except DatabaseError as exc:
        return Finding(
            "sync_health",
            TITLE,
            Status.FAIL,
            f"Cannot read the ConnectyCube user links: {exc}".strip(),
            "Check the database connection and run `manage.py migrate django_connectycube`.",
        )
    failed = counts[CubeUser.State.FAILED]
    owed = counts[CubeUser.State.PENDING] + counts[CubeUser.State.DELETING]
    details: dict[str, Any] = {
        "states": {state: count.value for state, count in counts.items() if count.value},
        "failed": failed.value,
        "owed": owed.value,
    }
    total = sum(counts.values(), BoundedCount(0))
    parts = [f"{total} link(s)", f"{owed} owed", f"{failed} failed"]
    age = None
    if oldest is not None:
        age = timezone.now() - oldest
        details["oldest_owed_seconds"] = round(age.total_seconds())
        parts.append(f"oldest owed change waiting at least {duration(age.total_seconds())}")
    message = "; ".join(parts) + "."
    problems: list[str] = []
    actions: list[str] = []
    if failed.value:
        problems.append(f"{failed} user(s) gave up syncing")
        actions.append(
            "read their last error in the admin (ConnectyCube users, state failed), fix the "
            "cause, then use the admin's re-sync action or `manage.py connectycube_sync --user PK`"
        )
    if age is not None and age > stale_after():
        problems.append(
            f"a change has waited longer than {duration(stale_after().total_seconds())}"
        )
        actions.append(
            "check that a Celery worker consumes the sync queue and that the sweep runs (the "
            "broker and beat checks above), or push now with `manage.py connectycube_sync`"
        )
    if problems:
        action = "; ".join(actions)
        return Finding(
            "sync_health",
            TITLE,
            Status.WARN,
            f"{message} Problem: {'; '.join(problems)}.",
            action[0].upper() + action[1:] + ".",
            details,
        )
    return Finding("sync_health", TITLE, Status.OK, message, details=details)
