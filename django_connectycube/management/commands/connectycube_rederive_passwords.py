"""Move every mirrored user's ConnectyCube password to the newest secret of ``PASSWORD_SECRETS``.

Logins move users one by one as they come back; this command moves the rest, so the old secret
can be dropped. For each user it logs in with the password the user is recorded to have (then
the other known secrets), sets the newest password, records the version actually in use, and
ends the session it made. Rows are taken in primary-key order: a run that stops is resumed by
running it again (users already moved are skipped) or with ``--start-after`` the last pk printed.

With the default secret (``PASSWORD_SECRETS`` unset: ``SECRET_KEY``), a recorded version cannot
tell an old ``SECRET_KEY`` from the new one, so every user is checked.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_connectycube.client import AuthenticationError, ConnectyCubeError, NotFound
from django_connectycube.conf import app_settings
from django_connectycube.management.validation import bounded_float, bounded_int, check_range
from django_connectycube.models import CubeUser
from django_connectycube.sync import logins, mapping
from django_connectycube.sync.connection import shared_client

MAX_BATCH = 10_000
#: Failed pks listed at the end (the count is always complete).
SHOWN_FAILURES = 50


class Command(BaseCommand):
    help = (
        "Move every mirrored user to the newest password secret (PASSWORD_SECRETS), logging "
        "each in once. Resumable; prints progress after every batch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            help="check every user, not only those recorded on an older version",
        )
        parser.add_argument(
            "--batch-size",
            type=bounded_int("--batch-size", 1, MAX_BATCH),
            default=100,
            help=f"users per batch and progress line (1-{MAX_BATCH}, default 100)",
        )
        parser.add_argument(
            "--start-after",
            type=bounded_int("--start-after", 0, 2**63 - 1),
            default=0,
            metavar="PK",
            help="resume: only rows whose CubeUser pk is above this one",
        )
        parser.add_argument(
            "--pause",
            type=bounded_float("--pause", 0.0, 60.0),
            default=0.0,
            help="seconds to wait between users, to stay below ConnectyCube's rate limits",
        )
        parser.add_argument("--dry-run", action="store_true", help="count the users, call nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        check_range("--batch-size", options["batch_size"], 1, MAX_BATCH)
        check_range("--start-after", options["start_after"], 0, 2**63 - 1)
        check_range("--pause", options["pause"], 0, 60, integer=False)
        if logins.auth_mode() == logins.AUTH_MODE_CIDP:
            raise CommandError(
                'AUTH_MODE is "cidp": users log in with signed tokens and have no derived '
                "password to move."
            )
        current = mapping.current_password_version()
        check_all = options["all"] or not app_settings.PASSWORD_SECRETS
        links = CubeUser.objects.filter(
            user__isnull=False, cube_id__isnull=False, pk__gt=options["start_after"]
        ).exclude(state__in=(CubeUser.State.DELETING, CubeUser.State.DELETED))
        if not check_all:
            links = links.exclude(password_version=current)
        total = links.count()
        verb = "check" if check_all else "move"
        self.stdout.write(f"{total} user(s) to {verb} to password version {current}.")
        if options["dry_run"] or not total:
            return
        counts = {"moved": 0, "current": 0, "failed": 0}
        failed: list[int] = []
        done = 0
        last_pk = options["start_after"]
        client = shared_client()
        while True:
            batch = list(links.filter(pk__gt=last_pk).order_by("pk")[: options["batch_size"]])
            if not batch:
                break
            for link in batch:
                outcome = self.move(link, client, current)
                counts[outcome] += 1
                if outcome == "failed":
                    failed.append(link.pk)
                if options["pause"]:
                    time.sleep(options["pause"])
            done += len(batch)
            last_pk = batch[-1].pk
            self.stdout.write(
                f"{done}/{total}: moved {counts['moved']}, already current {counts['current']}, "
                f"failed {counts['failed']} (resume with --start-after {last_pk})"
            )
        self.report(counts, failed)

    def move(self, link: CubeUser, client: Any, current: int) -> str:
        """Log one user in (which moves the password) and say what happened."""
        before = link.password_version
        try:
            session = logins.log_in(link, client)
        except (AuthenticationError, NotFound) as exc:
            self.stderr.write(f"CubeUser {link.pk} ({link.login}): no known secret works: {exc}")
            return "failed"
        except ConnectyCubeError as exc:
            self.stderr.write(f"CubeUser {link.pk} ({link.login}): {exc}")
            return "failed"
        with contextlib.suppress(ConnectyCubeError):  # it expires by itself anyway
            client.destroy_session(session.token)
        if link.password_version != current:
            return "failed"  # logged in with an old secret, but the move did not happen
        return "current" if before == current else "moved"

    def report(self, counts: dict[str, int], failed: list[int]) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: moved {counts['moved']}, already current {counts['current']}, "
                f"failed {counts['failed']}."
            )
        )
        if failed:
            shown = ", ".join(str(pk) for pk in failed[:SHOWN_FAILURES])
            more = " …" if len(failed) > SHOWN_FAILURES else ""
            raise CommandError(
                f"{len(failed)} user(s) could not be moved (CubeUser pk {shown}{more}). Keep "
                "their secret version in PASSWORD_SECRETS and run the command again; a user "
                "whose password no secret derives was not created by this site."
            )
