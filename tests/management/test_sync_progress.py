"""``connectycube_sync``'s progress: a bar with the rate and the time left on a terminal (tqdm),
nothing but the summary when the output goes to a file or a pipe."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command

from tests.sync.test_backfill import cube, quiet_users  # noqa: F401 - fixtures

pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db(transaction=True)]


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def backfill(out: StringIO) -> str:
    call_command("connectycube_sync", "--all", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_terminal_gets_a_bar_with_rate_and_time_left(cube, settings):  # noqa: F811
    quiet_users(settings, 6)
    shown = backfill(Terminal())
    bar = shown.split("\r")[-1]
    assert re.search(r"100%\|.*\| 6/6 \[\d\d:\d\d<\d\d:\d\d, .*users/s\]", bar), shown
    assert "Pushed 6 user(s)" in shown
    assert "[#" not in shown


def test_a_file_or_pipe_gets_only_the_summary(cube, settings):  # noqa: F811
    quiet_users(settings, 3)
    shown = backfill(StringIO())
    assert "\r" not in shown and "%|" not in shown
    assert shown.strip().splitlines()[-1].startswith("Pushed 3 user(s)")
