"""``manage.py connectycube_emulator``: the emulator with this project's credentials.

Same options as ``python -m django_connectycube.emulator``; the application id, auth key and
secret default to ``settings.CONNECTYCUBE`` so the site and the emulator agree without flags.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_connectycube.conf import app_settings
from django_connectycube.emulator.cli import add_arguments, run


def _settings_defaults() -> dict[str, Any]:
    """Credentials from settings where set; the emulator's own defaults otherwise."""
    defaults: dict[str, Any] = {}
    if app_settings.get("APPLICATION_ID") not in (None, ""):
        defaults["app_id"] = int(app_settings.get("APPLICATION_ID"))
    if app_settings.get("AUTH_KEY"):
        defaults["auth_key"] = app_settings.get("AUTH_KEY")
    if app_settings.get("AUTH_SECRET"):
        defaults["auth_secret"] = app_settings.get("AUTH_SECRET")
    return defaults


class Command(BaseCommand):
    help = "Serve a local ConnectyCube REST emulator until stopped (prints its URL first)."
    requires_system_checks: list[str] = []  # type: ignore[assignment]

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser, _settings_defaults())

    def handle(self, *args: Any, **options: Any) -> None:
        if run(options, out=self.stdout, err=self.stderr):
            raise CommandError("the emulator could not start (the reason is above)")
