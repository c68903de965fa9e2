"""Drift found and repaired without a human: ConnectyCube restarted without its data.

A remote that forgot our users (a reset emulator, a wiped or recreated application) leaves links
``synced`` and pointing at remote users that do not exist. The background verification (a beat
task over a rolling window of links) finds them, records it on the row and makes them owed, so
the normal push creates them again; the admin's health page and the doctor show it meanwhile.
"""

from __future__ import annotations

import io
import math
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from django_connectycube.models import CubeUser, DriftScan
from django_connectycube.sync import enqueue, policy, tasks
from django_connectycube.sync import push as sync

pytestmark = [pytest.mark.usefixtures("clean_cache")]
User = get_user_model()
HEALTH = "admin:django_connectycube_cubeuser_sync_health"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def make_users(n: int, prefix: str = "u") -> list:
    return [
        User.objects.create_user(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com")
        for i in range(n)
    ]


def control_reset(cube) -> None:
    """Wipe the emulator through its control API, as an operator restarting it would."""
    url = f"{cube.url}/_emulator/reset"
    request = urllib.request.Request(  # noqa: S310 - http://
        url, method="POST", data=b"", headers={"X-Emulator-Control": "1"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the test server
        assert answer.status == 200


def remote_external_ids(cube) -> set[str]:
    return {u["external_id"] for u in cube.users}


def doctor(*checks: str) -> tuple[int, str]:
    out = io.StringIO()
    args = [arg for check in checks for arg in ("--check", check)]
    try:
        call_command("connectycube_doctor", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


@pytest.mark.django_db
@pytest.mark.usefixtures("no_broker")
def test_the_verification_finds_users_a_reset_remote_forgot(connectycube_emulator):
    users = make_users(3)
    for user in users:
        assert sync.push_user(user.pk) == policy.CREATED
    control_reset(connectycube_emulator)
    assert tasks.verify_links.apply(kwargs={"window": 100}).get() == {"checked": 3, "drift": 3}
    reads = {route for route in connectycube_emulator.request_counts() if route.startswith("GET")}
    assert reads == {"GET /users/v2"}  # v2 look-ups by id only (the v1 ones are off)
    for link in CubeUser.objects.all():
        assert (link.cube_id, link.state) == (None, CubeUser.State.PENDING)
        assert link.is_dirty
        assert link.last_error.startswith("Drift: ")
        assert "missing on ConnectyCube" in link.last_error
        assert link.drift_found_at is not None
    for user in users:  # the normal push creates them again
        assert sync.push_user(user.pk) == policy.CREATED
    assert remote_external_ids(connectycube_emulator) == {
        link.external_id for link in CubeUser.objects.all()
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("no_broker")
def test_a_remote_user_that_is_not_ours_is_owed_and_the_push_decides(connectycube_emulator):
    [alice] = make_users(1, "alice")
    assert sync.push_user(alice.pk) == policy.CREATED
    old = CubeUser.objects.get(user=alice)
    connectycube_emulator.reset()
    stranger = connectycube_emulator.create_user(
        login="stranger", password="12345678", external_id="elsewhere"
    )
    assert stranger["id"] == old.cube_id  # the reset remote gave alice's id to someone else
    assert tasks.verify_links.apply().get() == {"checked": 1, "drift": 1}
    link = CubeUser.objects.get(user=alice)
    assert link.state == CubeUser.State.PENDING and link.is_dirty
    assert "not ours" in link.last_error and "'elsewhere'" in link.last_error
    assert sync.push_user(alice.pk) == policy.CREATED
    link.refresh_from_db()
    assert link.cube_id != stranger["id"] and link.state == CubeUser.State.SYNCED
    assert {u["login"] for u in connectycube_emulator.users} == {"stranger", "alice0"}


@pytest.mark.django_db
@pytest.mark.usefixtures("no_broker")
def test_the_window_rolls_over_the_table_and_a_failed_look_up_changes_nothing(
    connectycube_emulator, settings
):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    users = make_users(5)
    for user in users:
        sync.push_user(user.pk)
    assert tasks.verify_links.apply(kwargs={"window": 2}).get() == {"checked": 2, "drift": 0}
    scan = DriftScan.objects.get()
    assert scan.after == CubeUser.objects.order_by("pk")[1].pk and scan.last_run_at
    assert scan.last_pass_at is None
    connectycube_emulator.set_fault("GET /users/v2", error_rate=1, statuses=[503])
    assert tasks.verify_links.apply(kwargs={"window": 2}).get() == {"checked": 0, "drift": 0}
    assert DriftScan.objects.get().after == scan.after  # not skipped: looked at again
    connectycube_emulator.clear_faults()
    assert CubeUser.objects.filter(state=CubeUser.State.SYNCED).count() == 5
    tasks.verify_links.apply(kwargs={"window": 2})
    assert tasks.verify_links.apply(kwargs={"window": 2}).get() == {"checked": 1, "drift": 0}
    scan = DriftScan.objects.get()
    assert (scan.after, scan.last_pass_at is not None) == (0, True)  # starts again


@pytest.mark.django_db(transaction=True)  # the command pushes from a thread pool
@pytest.mark.usefixtures("no_broker")
def test_sync_all_and_repair_recreate_users_the_remote_forgot(connectycube_emulator):
    users = make_users(4)
    call_command("connectycube_sync", "--all", stdout=io.StringIO())
    control_reset(connectycube_emulator)
    out = io.StringIO()
    call_command("connectycube_sync", "--all", stdout=out)
    assert "4 missing on ConnectyCube" in out.getvalue()
    assert "4 created" in out.getvalue()
    assert remote_external_ids(connectycube_emulator) == {
        CubeUser.objects.get(user=u).external_id for u in users
    }
    control_reset(connectycube_emulator)
    out = io.StringIO()
    call_command("connectycube_sync", "--repair", stdout=out)
    assert "4 missing on ConnectyCube" in out.getvalue()
    assert "4 created" in out.getvalue()
    out = io.StringIO()
    call_command("connectycube_sync", "--verify", stdout=out)
    assert "0 with drift" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.usefixtures("no_broker")
def test_a_404_on_the_avatar_upload_recreates_the_user(connectycube_emulator):
    [user] = make_users(1, "pic")
    assert sync.push_user(user.pk) == policy.CREATED
    old = CubeUser.objects.get(user=user)
    connectycube_emulator.reset()
    user.avatar.save("one.png", ContentFile(PNG), save=False)  # the fields are unchanged
    User.objects.filter(pk=user.pk).update(avatar=user.avatar.name)
    CubeUser.objects.filter(pk=old.pk).mark_owed(old.updated_at)
    assert sync.push_user(user.pk) == policy.CREATED
    link = CubeUser.objects.get(user=user)
    assert link.state == CubeUser.State.SYNCED and link.external_id != old.external_id
    [remote] = connectycube_emulator.users
    assert (remote["id"], remote["external_id"]) == (link.cube_id, link.external_id)
    assert link.avatar_uid and connectycube_emulator.get_blob_data(link.avatar_uid) == PNG


@pytest.mark.django_db(transaction=True)
def test_a_wiped_remote_is_repaired_within_one_window_with_no_human(
    connectycube_emulator, connectycube_celery
):
    """The done-when: a running site (saves queue pushes, beat runs the sweep and the
    verification, a worker runs what they send), ConnectyCube wiped under it."""
    window, n = 10, 25
    make_users(n)
    connectycube_celery.run()  # the worker pushes the new users
    assert len(connectycube_emulator.users) == n
    assert doctor("drift")[0] == 0
    control_reset(connectycube_emulator)
    staff = Client()
    staff.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    connectycube_celery.run()  # root's own push
    saw_drift_on_page = saw_doctor_fail = False
    for _tick in range(math.ceil((n + 1) / window)):  # one pass, as stated in the README
        tasks.verify_links.apply(kwargs={"window": window})
        page = staff.get(reverse(HEALTH)).content.decode()
        code, report = doctor("drift")
        saw_drift_on_page |= 'id="sync-drift-count">0<' not in page and "sync-drift" in page
        saw_doctor_fail |= code != 0 and "missing on ConnectyCube" in report
        enqueue.sweep_dirty.apply()  # beat's sweep hands the owed rows to the worker
        connectycube_celery.run()
    assert saw_drift_on_page and saw_doctor_fail
    links = CubeUser.objects.filter(user__isnull=False)
    assert {link.state for link in links} == {CubeUser.State.SYNCED}
    assert remote_external_ids(connectycube_emulator) == {link.external_id for link in links}
    code, report = doctor("drift")
    assert code == 0, report
    page = staff.get(reverse(HEALTH)).content.decode()
    assert 'id="sync-drift-count">0<' in page and "Last verification" in page
