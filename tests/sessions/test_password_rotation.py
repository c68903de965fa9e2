"""Password secrets: ``password_version`` records the secret a login actually used, and
``connectycube_rederive_passwords`` moves every user to the newest secret."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from django_connectycube.checks.security import check_secrets
from django_connectycube.client import AuthenticationError
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sessions import login as sessions
from django_connectycube.sync import mapping, policy
from django_connectycube.sync import push as sync
from django_connectycube.sync.connection import shared_client

User = get_user_model()
pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]
FIRST = {1: "first secret"}
BOTH = {1: "first secret", 2: "second secret"}
COMMAND = "connectycube_rederive_passwords"


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    return connectycube_emulator


def use_secrets(settings, secrets):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "PASSWORD_SECRETS": secrets}


def pushed(username):
    user = User.objects.create(username=username, email=f"{username}@example.com")
    assert sync.push_user(user.pk) == policy.CREATED
    return user


def version_of(user) -> int:
    return CubeUser.objects.get(user=user).password_version


def logs_in_with(user, version) -> bool:
    link = CubeUser.objects.get(user=user)
    try:
        shared_client().create_user_session(
            login=link.login, password=mapping.derive_password(link.external_id, version)
        )
    except AuthenticationError:
        return False
    return True


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(COMMAND, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# ---- password_version follows the secret actually used -------------------------------------


def test_a_login_records_the_version_that_worked_when_the_move_fails(cube, settings):
    use_secrets(settings, FIRST)
    user = pushed("rotator")
    use_secrets(settings, BOTH)
    CubeUser.objects.filter(user=user).update(password_version=2)  # the row is wrong
    cube.set_fault("PUT /users/{id}", error_rate=1, statuses=[503])  # the move cannot happen
    sessions.get_session_for_user(user)
    assert version_of(user) == 1  # what ConnectyCube actually has


def test_a_login_with_a_fallback_secret_key_is_not_recorded_as_the_current_one(cube, settings):
    user = pushed("keyrot")
    assert version_of(user) == 1
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-brand-new-key", [settings.SECRET_KEY]
    cube.set_fault("PUT /users/{id}", error_rate=1, statuses=[503])
    sessions.get_session_for_user(user)
    assert version_of(user) == 0  # an old SECRET_KEY: not yet moved
    cube.clear_faults()
    CubeSession.objects.filter(user_id=user.pk).update(token="", expires_at=None)  # forgotten
    sessions.get_session_for_user(user)
    assert version_of(user) == 1
    assert logs_in_with(user, 1)


# ---- the command ---------------------------------------------------------------------------


def test_the_command_moves_every_user_to_the_newest_secret(cube, settings):
    use_secrets(settings, FIRST)
    users = [pushed(f"user{i}") for i in range(3)]
    use_secrets(settings, BOTH)
    sessions_before = len(cube.sessions)
    out, _ = run("--batch-size", "2")
    assert "3 user(s) to move to password version 2" in out
    assert "2/3" in out and "3/3" in out  # progress per batch
    assert "moved 3" in out
    assert len(cube.sessions) == sessions_before  # its own logins were ended
    for user in users:
        assert version_of(user) == 2
        assert logs_in_with(user, 2) and not logs_in_with(user, 1)
    out, _ = run()
    assert "0 user(s) to move" in out  # resumable: what is done stays done


def test_the_command_resumes_after_a_given_pk(cube, settings):
    use_secrets(settings, FIRST)
    first, second = pushed("first"), pushed("second")
    use_secrets(settings, BOTH)
    after = CubeUser.objects.get(user=first).pk
    run("--start-after", str(after))
    assert version_of(first) == 1 and version_of(second) == 2


def test_the_command_reports_users_it_could_not_move(cube, settings):
    use_secrets(settings, FIRST)
    lost = pushed("lost")
    use_secrets(settings, {2: "second secret"})  # version 1 was dropped too early
    good = pushed("good")
    with pytest.raises(CommandError, match=r"1 user\(s\) could not be moved"):
        run("--all")
    assert version_of(lost) == 1
    assert version_of(good) == 2


def test_with_the_default_secret_every_user_is_checked(cube, settings):
    users = [pushed(f"user{i}") for i in range(2)]
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-brand-new-key", [settings.SECRET_KEY]
    out, _ = run()
    assert "2 user(s) to check" in out
    settings.SECRET_KEY_FALLBACKS = []  # the old key is retired
    for user in users:
        assert version_of(user) == 1
        assert logs_in_with(user, 1)


def test_dry_run_counts_without_calling_connectycube(cube, settings):
    use_secrets(settings, FIRST)
    pushed("user0")
    use_secrets(settings, BOTH)
    cube.reset_counters()
    out, _ = run("--dry-run")
    assert "1 user(s) to move to password version 2" in out
    assert cube.request_count() == 0


def test_cidp_mode_has_no_passwords_to_move(settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_MODE": "cidp"}
    with pytest.raises(CommandError, match="cidp"):
        run()


# ---- the warnings ----------------------------------------------------------------------------

GOOD = {"APPLICATION_ID": 1, "AUTH_KEY": "k", "AUTH_SECRET": "s"}


def test_secrets_falling_back_to_secret_key_are_warned_about():
    with override_settings(CONNECTYCUBE=GOOD):
        messages = check_secrets()
    assert sorted(m.id for m in messages) == ["connectycube.W004", "connectycube.W005"]
    text = " ".join(m.msg for m in messages)
    assert "PASSWORD_SECRETS" in text and "TOKEN_KEYS" in text
    with override_settings(
        CONNECTYCUBE={**GOOD, "PASSWORD_SECRETS": FIRST, "TOKEN_KEYS": ["k" * 43 + "="]}
    ):
        assert check_secrets() == []
