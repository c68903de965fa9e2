"""connectycube_doctor: credentials and clock, against the emulator."""

from __future__ import annotations

import json
import logging
import socket
from io import StringIO

import pytest
import responses
from django.core.management import call_command
from django.core.management.base import CommandError

from django_connectycube.checks.doctor import DoctorContext, Status, run_checks
from django_connectycube.checks.doctor.connection import check_clock, check_credentials

pytestmark = pytest.mark.django_db


def doctor(*args: str) -> tuple[dict, int]:
    """Run the command with --json; the parsed report and the exit status."""
    out = StringIO()
    try:
        call_command("connectycube_doctor", "--json", *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return json.loads(out.getvalue()), exc.returncode
    return json.loads(out.getvalue()), 0


def by_check(report: dict) -> dict[str, dict]:
    return {item["check"]: item for item in report["checks"]}


def credentials_and_clock() -> list:
    return run_checks(
        DoctorContext(timeout=5),
        [("credentials", check_credentials), ("clock", check_clock)],
    )


def set_credential(settings, **changes) -> None:
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, **changes}


def test_good_credentials_create_a_session_and_the_doctor_ends_it(connectycube_emulator):
    report, code = doctor("--check", "credentials", "--check", "clock")
    checks = by_check(report)
    assert checks["credentials"]["status"] == "ok"
    assert checks["clock"]["status"] == "ok"
    assert abs(checks["clock"]["details"]["skew_seconds"]) < 5
    assert code == 0
    assert report["ok"] is True
    assert connectycube_emulator.request_count("POST /session") == 1
    assert connectycube_emulator.request_count("DELETE /session") == 1
    assert not connectycube_emulator.sessions


@pytest.mark.parametrize(
    ("setting", "value"),
    [("AUTH_SECRET", "not-the-secret"), ("AUTH_KEY", "not-the-key"), ("APPLICATION_ID", 999)],
)
def test_a_wrong_credential_names_the_setting_to_fix(
    connectycube_emulator, settings, setting, value
):
    set_credential(settings, **{setting: value})
    credentials, clock = credentials_and_clock()
    assert credentials.status is Status.FAIL
    assert credentials.details["setting"] == setting
    assert f'CONNECTYCUBE["{setting}"]' in credentials.action
    # The server answered, so the clock is still measured.
    assert clock.status is Status.OK
    # No session is left behind by the diagnosis (the unsigned probe's one is ended).
    assert not connectycube_emulator.sessions


def test_missing_credentials_are_listed_without_calling_the_server(connectycube_emulator, settings):
    set_credential(settings, AUTH_KEY=None, AUTH_SECRET="")
    credentials, clock = credentials_and_clock()
    assert credentials.status is Status.FAIL
    assert credentials.details["missing"] == ["AUTH_KEY", "AUTH_SECRET"]
    assert 'CONNECTYCUBE["AUTH_KEY"]' in credentials.message
    assert clock.status is Status.SKIP
    assert connectycube_emulator.request_count() == 0


def mocked_server(settings, url: str) -> None:
    """Settings aimed at a server the test mocks with ``responses``."""
    settings.CONNECTYCUBE = {
        "API_URL": url,
        "APPLICATION_ID": 1,
        "AUTH_KEY": "k",
        "AUTH_SECRET": "s",
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_is_a_finding_not_a_traceback(
    connectycube_emulator, settings, caplog
):
    set_credential(settings, API_URL=f"http://127.0.0.1:{closed_port()}")
    caplog.set_level(logging.INFO, logger="django_connectycube")
    report, code = doctor("--check", "credentials", "--check", "clock")
    # The finding says it; the client's own warning would only repeat it.
    assert not [r for r in caplog.records if r.name.startswith("django_connectycube")]
    checks = by_check(report)
    assert checks["credentials"]["status"] == "fail"
    assert "No answer from" in checks["credentials"]["message"]
    assert 'CONNECTYCUBE["API_URL"]' in checks["credentials"]["action"]
    assert checks["clock"]["status"] == "skip"
    assert code == 1


def test_a_malformed_url_is_a_finding(connectycube_emulator, settings):
    set_credential(settings, API_URL="api.connectycube.com")
    [credentials] = run_checks(DoctorContext(), [("credentials", check_credentials)])
    assert credentials.status is Status.FAIL
    assert "http://" in credentials.message


@responses.activate
def test_a_url_that_is_not_connectycube_is_named(settings):
    mocked_server(settings, "https://example.org")
    responses.post("https://example.org/session", body="<html>Not Found</html>", status=404)
    [credentials] = run_checks(DoctorContext(), [("credentials", check_credentials)])
    assert credentials.status is Status.FAIL
    assert "does not answer like the ConnectyCube API" in credentials.message
    assert 'CONNECTYCUBE["API_URL"]' in credentials.action


@responses.activate
def test_a_server_error_and_a_missing_date_header_are_findings(settings):
    mocked_server(settings, "https://cube.test")
    responses.post("https://cube.test/session", json={"errors": ["boom"]}, status=503)
    responses.get("https://cube.test/session", json={"errors": ["Token is required"]}, status=401)
    credentials, clock = credentials_and_clock()
    assert credentials.status is Status.FAIL
    assert "HTTP 503" in credentials.message
    # `responses` sends no Date header: the skew cannot be measured, and the doctor says so.
    assert clock.status is Status.WARN
    assert "no Date header" in clock.message


@pytest.mark.parametrize(
    ("offset", "status", "words"),
    [
        (20 * 60, Status.WARN, "20 min behind"),
        (-20 * 60, Status.WARN, "20 min ahead of"),
        (3 * 3600, Status.FAIL, "3.0 h behind"),
    ],
)
def test_clock_skew_warns_well_before_the_signature_window(
    connectycube_emulator, offset, status, words
):
    connectycube_emulator.advance_clock(offset)
    credentials, clock = credentials_and_clock()
    # The client works around the skew (it re-signs on the server's clock)...
    assert credentials.status is Status.OK
    # ...but the doctor reports it, with what to do.
    assert clock.status is status
    assert words in clock.message
    assert "NTP" in clock.action
    assert clock.details["skew_seconds"] == pytest.approx(offset, abs=3)


def test_a_small_skew_is_fine(connectycube_emulator):
    connectycube_emulator.advance_clock(90)
    _, clock = credentials_and_clock()
    assert clock.status is Status.OK


def test_a_check_that_crashes_becomes_a_failed_finding(connectycube_emulator):
    def broken(ctx):
        raise RuntimeError("surprise")

    [finding] = run_checks(DoctorContext(), [("broken_check", broken)])
    assert finding.status is Status.FAIL
    assert "RuntimeError: surprise" in finding.message
    assert finding.action


def test_the_text_report_has_one_line_per_check_and_what_to_do(connectycube_emulator, settings):
    set_credential(settings, AUTH_SECRET="wrong")
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(
            "connectycube_doctor", "--check", "credentials", "--check", "clock", stdout=out
        )
    assert raised.value.returncode == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ConnectyCube doctor (http://127.0.0.1:")
    assert lines[1].startswith("FAIL  Credentials")
    assert lines[2].strip().startswith('→ Set CONNECTYCUBE["AUTH_SECRET"]')
    assert lines[3].startswith("OK    Clock")
    assert lines[-1] == "1 failed, 1 fine."


def test_warnings_exit_zero_unless_asked(connectycube_emulator):
    connectycube_emulator.advance_clock(20 * 60)
    report, code = doctor("--check", "clock")
    assert by_check(report)["clock"]["status"] == "warn"
    assert code == 0
    _, code = doctor("--check", "clock", "--fail-on-warn")
    assert code == 1


def test_bad_timeout_is_a_command_error():
    with pytest.raises(CommandError, match="--timeout"):
        call_command("connectycube_doctor", "--timeout", "0", stdout=StringIO())


PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\n<body>"
    + "x" * 500
    + "</body></html>"
)


@responses.activate
@pytest.mark.parametrize("status", [200, 404])
def test_a_url_answering_a_web_page_is_said_in_one_line_without_the_html(settings, status):
    mocked_server(settings, "https://www.example.org")
    responses.post(
        "https://www.example.org/session", body=PAGE, status=status, content_type="text/html"
    )
    [credentials] = run_checks(DoctorContext(), [("credentials", check_credentials)])
    assert credentials.status is Status.FAIL
    assert "web page" in credentials.message
    assert "<" not in credentials.message and "\n" not in credentials.message
    assert len(credentials.message) < 160
    assert 'CONNECTYCUBE["API_URL"]' in credentials.action
