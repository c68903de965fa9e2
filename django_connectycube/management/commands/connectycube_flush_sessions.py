"""Delete stored ConnectyCube sessions that have expired (run it daily, like ``clearsessions``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from django_connectycube.models import CubeSession


class Command(BaseCommand):
    help = (
        "Delete stored per-user ConnectyCube sessions whose expiry has passed. ConnectyCube "
        "already refuses those tokens; the rows only take space."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count the expired rows, delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        expired = CubeSession.objects.filter(expires_at__lt=timezone.now())
        if options["dry_run"]:
            count = expired.count()
            self.stdout.write(f"{count} expired session(s) would be deleted (dry run).")
            return
        count, _ = expired.delete()
        self.stdout.write(self.style.SUCCESS(f"Deleted {count} expired session(s)."))
