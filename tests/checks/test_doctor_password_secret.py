"""connectycube_doctor: do the password secrets still match the users already on ConnectyCube?

The trap it closes: users created under the development settings (passwords derived from one
secret) meet production settings with a fresh secret under the same version. Every row still
says ``synced`` and ``check`` is green, yet each login answers 502. One trial login tells.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from django_connectycube.checks.doctor import CHECKS, DoctorContext, Status, run_checks
from django_connectycube.checks.doctor.connection import check_credentials
from django_connectycube.checks.doctor.password_secret import check_password_secret
from django_connectycube.models import CubeUser
from django_connectycube.sync import push

from .test_doctor_connection import by_check, doctor

pytestmark = pytest.mark.django_db


def secrets(settings, **versions: str) -> None:
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "PASSWORD_SECRETS": {int(v[1:]): s for v, s in versions.items()},
    }


def synced(username: str) -> CubeUser:
    user = get_user_model().objects.create_user(username=username, email=f"{username}@example.com")
    assert push.push_user(user.pk) == push.CREATED
    return CubeUser.objects.get(user=user)


def run() -> Status | object:
    return run_checks(
        DoctorContext(timeout=5),
        [("credentials", check_credentials), ("password_secret", check_password_secret)],
    )[1]


def test_the_doctor_runs_the_check():
    assert "password_secret" in dict(CHECKS)


def test_a_fresh_secret_under_the_version_users_were_created_with_fails(
    connectycube_emulator, settings
):
    secrets(settings, v1="development-secret")
    link = synced("ann")
    secrets(settings, v1="a-fresh-production-secret")
    connectycube_emulator.reset_counters()

    finding = run()

    assert finding.status is Status.FAIL
    assert "ann" in finding.message and "version 1" in finding.message
    assert "Invalid password" in finding.message
    assert (
        "PASSWORD_SECRETS" in finding.action and "connectycube_rederive_passwords" in finding.action
    )
    assert connectycube_emulator.request_count("POST /session") == 2  # the app's, one trial
    link.refresh_from_db()
    assert link.state == CubeUser.State.SYNCED  # the doctor changes nothing


def test_the_old_secret_kept_as_version_1_passes_and_the_trial_session_is_ended(
    connectycube_emulator, settings
):
    secrets(settings, v1="development-secret")
    synced("ann")
    secrets(settings, v1="development-secret", v2="a-fresh-production-secret")

    finding = run()

    assert finding.status is Status.OK, finding
    assert finding.details["version"] == 1
    assert connectycube_emulator.request_count("DELETE /session") >= 1
    assert CubeUser.objects.get().password_version == 1  # a diagnosis moves nobody


def test_the_user_on_the_oldest_secret_is_the_one_tried(connectycube_emulator, settings):
    secrets(settings, v1="old")
    synced("ann")
    secrets(settings, v1="old", v2="new")
    synced("bob")  # version 2
    secrets(settings, v1="lost", v2="new")

    finding = run()

    assert finding.status is Status.FAIL
    assert "ann" in finding.message


def test_nothing_to_try_without_a_synced_user(connectycube_emulator):
    finding = run()
    assert finding.status is Status.SKIP
    assert connectycube_emulator.request_count("POST /session") == 1


def test_cidp_mode_has_no_derived_passwords(connectycube_emulator, settings):
    synced("ann")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_MODE": "cidp"}
    assert run().status is Status.SKIP


def test_the_command_reports_it(connectycube_emulator, settings):
    secrets(settings, v1="development-secret")
    synced("ann")
    secrets(settings, v1="a-fresh-production-secret")
    report, code = doctor("--check", "credentials", "--check", "password_secret")
    assert code == 1
    assert by_check(report)["password_secret"]["status"] == "fail"
