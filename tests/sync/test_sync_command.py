from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from django_connectycube.models import CubeUser

pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db(transaction=True)]
User = get_user_model()


def run(*args):
    out = StringIO()
    call_command("connectycube_sync", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def quiet_users(settings, n, prefix="u"):
    """Users created while sync is off: what a site has before installing the app."""
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    users = [
        User.objects.create(username=f"{prefix}{i}", email=f"{prefix}{i}@x.org") for i in range(n)
    ]
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    return users


def test_backfill_all_then_verify_reports_no_drift(connectycube_emulator, settings):
    users = quiet_users(settings, 12)
    out = run("--all", "--concurrency", "3")
    assert "Pushed 12 user(s)" in out
    assert "12 created" in out
    assert len(connectycube_emulator.users) == 12
    assert CubeUser.objects.filter(state="synced").count() == 12
    assert "0 with drift" in run("--verify")
    # Running it again creates nothing new.
    run("--all")
    assert len(connectycube_emulator.users) == len(users)


def test_verify_reports_drift_without_writing(connectycube_emulator, settings):
    [user] = quiet_users(settings, 1, "drift")
    run("--all")
    User.objects.filter(pk=user.pk).update(first_name="Changed")  # no signal: drift
    connectycube_emulator.reset_counters()
    with pytest.raises(CommandError, match="1 user"):
        out = StringIO()
        call_command("connectycube_sync", "--verify", stdout=out)
    assert "full_name: local 'Changed', remote None" in out.getvalue()
    assert connectycube_emulator.request_count("PUT /users/{id}") == 0


def test_dry_run_writes_and_sends_nothing(connectycube_emulator, settings):
    quiet_users(settings, 3, "dry")
    out = run("--all", "--dry-run")
    assert "Would push 3 user(s)" in out
    assert connectycube_emulator.request_count() == 0
    assert not CubeUser.objects.exists()


def test_dirty_pushes_only_owed_users(connectycube_emulator, settings):
    run("--dirty")
    a = User.objects.create(username="dirty-a")
    out = run("--dirty")
    assert "1 created" in out
    assert [u["login"] for u in connectycube_emulator.users] == ["dirty-a"]
    assert CubeUser.objects.get(user=a).state == "synced"


def test_single_users_and_unknown_pk(connectycube_emulator, settings):
    users = quiet_users(settings, 3, "one")
    assert "1 created" in run("--user", str(users[1].pk))
    missing = (
        "00000000-0000-0000-0000-000000000000"
        if User._meta.pk.get_internal_type() == ("UUIDField")
        else "999999"
    )
    with pytest.raises(CommandError, match=f"No local user with pk {missing}"):
        run("--user", missing)
    with pytest.raises(CommandError, match=r"--user: .*not-a-pk"):
        run("--user", "not-a-pk")


def test_failures_are_summarised_and_raise(connectycube_emulator, settings):
    User.objects.create(username="badtags", tags="a,b,c,d,e,f")
    with pytest.raises(CommandError, match="1 user"):
        run("--dirty")
    assert CubeUser.objects.get(user__username="badtags").state == "failed"


def test_bad_concurrency_is_a_command_error():
    with pytest.raises(CommandError, match="concurrency"):
        run("--all", "--concurrency", "0")
