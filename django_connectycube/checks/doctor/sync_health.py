"""Is mirroring keeping up: dead letters, the oldest owed change, and drift from ConnectyCube.

Read from the ``CubeUser`` rows alone (the background verification records what it finds on
them), so these say the same as the admin's health page whether or not a worker or broker runs:
the place to look when the other checks pass but users are missing.
"""

from __future__ import annotations

from collections.abc import Callable
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
from django_connectycube.sync import verification


def stale_after() -> timedelta:
    """How long an owed change may wait before it counts as stuck: three sweep periods, i.e.
    the sweep had time to re-send it twice and a worker to push it."""
    return timedelta(seconds=3 * float(app_settings.SWEEP_AFTER))


def _reading_rows(check: Callable[[DoctorContext], Finding]) -> Callable[[DoctorContext], Finding]:
    """A table that cannot be read is a finding (no migration, no database), not a crash."""

    def guarded(ctx: DoctorContext) -> Finding:
        try:
            return check(ctx)
        except DatabaseError as exc:
            return Finding(
                check.__name__.removeprefix("check_"),
                Status.FAIL,
                f"Cannot read the ConnectyCube user links: {exc}".strip(),
                "Check the database connection and run `manage.py migrate django_connectycube`.",
            )

    guarded.__name__ = check.__name__
    return guarded


@_reading_rows
def check_sync_health(ctx: DoctorContext) -> Finding:
    """Counts of rows per state (bounded, as on the admin's health page: exact up to a cap,
    then an estimate), failed rows, and the age of the oldest owed change.

    A row has no "owed since" column; its ``updated_at`` moves on every change and every failed
    attempt, so the age reported is a lower bound: the change has waited at least that long.
    """
    counts = {
        state: bounded_count(CubeUser.objects.filter(state=state))
        for state, _ in CubeUser.State.choices
    }
    oldest = CubeUser.objects.owed().aggregate(oldest=Min("updated_at"))["oldest"]
    failed = counts[CubeUser.State.FAILED]
    owed = counts[CubeUser.State.PENDING] + counts[CubeUser.State.DELETING]
    details: dict[str, Any] = {
        "states": {state: count.value for state, count in counts.items() if count.value},
        "failed": failed.value,
        "owed": owed.value,
    }
    total = sum(counts.values(), BoundedCount(0))
    parts = [f"{total} link(s)", f"{owed} owed", f"{failed} failed"]
    problems: list[str] = []
    actions: list[str] = []
    if oldest is not None:
        age = (timezone.now() - oldest).total_seconds()
        details["oldest_owed_seconds"] = round(age)
        parts.append(f"oldest owed change waiting at least {duration(age)}")
        stale = stale_after().total_seconds()
        if age > stale:
            problems.append(f"a change has waited longer than {duration(stale)}")
            actions.append(
                "check that a worker consumes the sync queue and that the sweep runs (see the "
                "broker and beat checks), or push now with `manage.py connectycube_sync`"
            )
    if failed.value:
        problems.insert(0, f"{failed} user(s) gave up syncing")
        actions.insert(
            0,
            "read their last error in the admin (ConnectyCube users, state failed), fix the "
            "cause, then re-sync them there or with `manage.py connectycube_sync --user PK`",
        )
    message = "; ".join(parts) + "."
    if not problems:
        return Finding("sync_health", Status.OK, message, details=details)
    action = "; ".join(actions)
    return Finding(
        "sync_health",
        Status.WARN,
        f"{message} Problem: {'; '.join(problems)}.",
        action[0].upper() + action[1:] + ".",
        details,
    )


def _ago(when: Any) -> str:
    return "never" if when is None else f"{duration((timezone.now() - when).total_seconds())} ago"


@_reading_rows
def check_drift(ctx: DoctorContext) -> Finding:
    """Links the verification found missing or not ours on ConnectyCube and no push has
    repaired yet (FAIL), and when the verification last ran."""
    drifted = verification.drifted()
    count = bounded_count(drifted)
    example = drifted.order_by("-drift_found_at").values_list("last_error", flat=True).first()
    scan = verification.last_run()
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
            Status.FAIL,
            f"{count} link(s) drifted from ConnectyCube, not repaired yet ({when}); "
            f"latest: {example}",
            "They are owed a push that creates them again: check that a worker and the sweep "
            "run, or push now with `manage.py connectycube_sync --repair`.",
            details,
        )
    if last_run is None:
        return Finding(
            "drift",
            Status.WARN,
            "No verification of the links against ConnectyCube has run: users a reset "
            "application forgot would go unnoticed.",
            'Add {"connectycube-verify": {"task": "django_connectycube.verify_links", '
            '"schedule": 60.0}} to CELERY_BEAT_SCHEDULE and run beat, or run '
            "`manage.py connectycube_sync --repair`.",
            details,
        )
    return Finding("drift", Status.OK, f"No drift found ({when}).", details=details)
