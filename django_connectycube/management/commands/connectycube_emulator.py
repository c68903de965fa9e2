"""``manage.py connectycube_emulator``: the emulator with this project's credentials.

Same options as ``python -m django_connectycube.emulator``; the application id, auth key and
secret default to ``settings.CONNECTYCUBE`` so the site and the emulator agree without flags.
A port out of range, a port another process holds or a host that does not resolve is a
``CommandError`` saying so, before anything is served.
"""

from __future__ import annotations

import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_connectycube.conf import app_settings
from django_connectycube.emulator.cli import add_arguments, run
from django_connectycube.management.validation import bounded_int, check_range

MAX_PORT = 65535
MAX_APP_ID = 2**63 - 1
#: Options whose argparse type is replaced by a range-checked one (the emulator's own CLI
#: keeps its plain ``int``).
NUMERIC = {"port": ("--port", 0, MAX_PORT), "app_id": ("--app-id", 1, MAX_APP_ID)}


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


def check_can_listen(host: str, port: int) -> None:
    """``CommandError`` when ``host`` does not resolve or ``port`` is taken there."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:  # socket.gaierror
        raise CommandError(f"Cannot serve on {where}: the host does not resolve ({exc}).") from exc
    if port == 0:
        return  # any free port: the server picks one
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandError(
                f"Cannot serve on {where}: {exc.strerror or exc}. Another process is listening "
                "there: stop it or pick another --port (0 picks a free one)."
            ) from exc


class Command(BaseCommand):
    help = "Serve a local ConnectyCube REST emulator until stopped (prints its URL first)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser, _settings_defaults())
        for action in parser._actions:
            if action.dest in NUMERIC:
                action.type = bounded_int(*NUMERIC[action.dest])

    def handle(self, *args: Any, **options: Any) -> None:
        for dest, (name, low, high) in NUMERIC.items():
            check_range(name, options[dest], low, high)
        host, port = options["host"], options["port"]
        check_can_listen(host, port)
        try:
            failed = run(options, out=self.stdout, err=self.stderr)
        except OSError as exc:  # lost a race for the port after the check
            raise CommandError(f"Cannot serve on {host}:{port}: {exc}") from exc
        if failed:
            raise CommandError("the emulator could not start (the reason is above)")
