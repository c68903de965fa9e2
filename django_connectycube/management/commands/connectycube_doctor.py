"""Check this site's ConnectyCube setup and say what to fix."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_connectycube.checks.doctor import (
    CHECKS,
    DoctorContext,
    Status,
    render_json,
    render_text,
    run_checks,
)


class Command(BaseCommand):
    help = (
        "Check the settings, the ConnectyCube credentials, the clock, the application's switches, "
        "the admin API key, the Celery broker, workers and beat, the sync backlog and drift. "
        "One line per check; exits non-zero when a check fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the findings as JSON")
        parser.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            help="seconds to wait for ConnectyCube or the broker (default 10)",
        )
        parser.add_argument(
            "--fail-on-warn", action="store_true", help="exit non-zero on warnings too"
        )
        parser.add_argument(
            "--check",
            action="append",
            choices=[name for name, _ in CHECKS],
            help="run only this check (repeatable)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["timeout"] <= 300:
            raise CommandError("--timeout must be between 0 and 300 seconds.")
        selected = options["check"]
        checks = [pair for pair in CHECKS if not selected or pair[0] in selected]
        ctx = DoctorContext(timeout=options["timeout"])
        with _quiet_client_log(options["verbosity"]):
            findings = run_checks(ctx, checks)
        where = f"{ctx.api_url}, application {ctx.setting('APPLICATION_ID')}"
        if options["json"]:
            self.stdout.write(render_json(findings, api_url=ctx.api_url))
        else:
            self.stdout.write(render_text(findings, heading=f"ConnectyCube doctor ({where})"))
        bad = {Status.FAIL, Status.WARN} if options["fail_on_warn"] else {Status.FAIL}
        failed = [f for f in findings if f.status in bad]
        if failed:
            names = ", ".join(f.check for f in failed)
            raise CommandError(f"{len(failed)} check(s) need attention: {names}.", returncode=1)


@contextlib.contextmanager
def _quiet_client_log(verbosity: int) -> Iterator[None]:
    """The findings already carry every failure; the client's warnings would say it twice
    (``-v 2`` shows them)."""
    logger = logging.getLogger("django_connectycube")
    previous = logger.level
    if verbosity < 2:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)
