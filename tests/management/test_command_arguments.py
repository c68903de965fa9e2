"""Every numeric argument of every management command: bad values are a ``CommandError`` that
says what is allowed, never a traceback from deep inside (a socket, the database)."""

from __future__ import annotations

import io
import re
import socket

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db]

HUGE = str(10**30)


def run(*args, **options):
    call_command(*args, stdout=io.StringIO(), stderr=io.StringIO(), **options)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("connectycube_emulator", "--port", "-1"), "--port must be between 0 and 65535"),
        (("connectycube_emulator", "--port", "70000"), "--port must be between 0 and 65535"),
        (("connectycube_emulator", "--port", "http"), "--port must be an integer"),
        (("connectycube_emulator", "--app-id", "0"), "--app-id must be between 1 and"),
        (("connectycube_emulator", "--app-id", HUGE), "--app-id must be between 1 and"),
        (("connectycube_rotate_keys", "--batch-size", "0"), "--batch-size must be between 1"),
        (("connectycube_rotate_keys", "--batch-size", "-5"), "--batch-size must be between 1"),
        (("connectycube_rotate_keys", "--batch-size", HUGE), "--batch-size must be between 1"),
        (("connectycube_sync", "--concurrency", "0"), "--concurrency must be between 1 and 64"),
        (("connectycube_sync", "--concurrency", HUGE), "--concurrency must be between 1 and 64"),
        (("connectycube_sync", "--user", HUGE), "--user"),
        (("connectycube_sync", "--user", "-3"), "No local user with pk -3"),
        (("connectycube_sync", "--user", "abc"), "--user"),
        (("connectycube_rederive_passwords", "--batch-size", "0"), "--batch-size must be"),
        (("connectycube_rederive_passwords", "--batch-size", HUGE), "--batch-size must be"),
        (("connectycube_rederive_passwords", "--start-after", "-1"), "--start-after must be"),
        (("connectycube_rederive_passwords", "--start-after", HUGE), "--start-after must be"),
        (("connectycube_rederive_passwords", "--pause", "-1"), "--pause must be between 0"),
        (("connectycube_rederive_passwords", "--pause", "61"), "--pause must be between 0"),
        (("connectycube_rederive_passwords", "--pause", "nan"), "--pause must be between 0"),
    ],
)
def test_out_of_range_arguments_are_command_errors(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("connectycube_rotate_keys", "batch_size", 0),
        ("connectycube_rederive_passwords", "batch_size", 10**30),
        ("connectycube_rederive_passwords", "pause", -1.0),
        ("connectycube_emulator", "port", 70000),
        ("connectycube_sync", "concurrency", 0),
    ],
)
def test_options_passed_from_code_are_checked_too(command, option, value):
    with pytest.raises(CommandError, match="must be between"):
        run(command, **{option: value})


def test_a_busy_port_is_a_command_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=re.escape(f"127.0.0.1:{port}")):
            run("connectycube_emulator", "--port", str(port))


def test_an_unknown_host_is_a_command_error():
    with pytest.raises(CommandError, match=re.escape("no-such-host.invalid")):
        run("connectycube_emulator", "--host", "no-such-host.invalid", "--port", "0")
