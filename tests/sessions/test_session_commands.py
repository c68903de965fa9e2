"""``connectycube_flush_sessions`` and ``connectycube_rotate_keys``."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from django_connectycube.models import CubeSession

pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db]
User = get_user_model()

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def session_for(name: str, token: str = "tok", expires_in: float = 3600) -> CubeSession:  # noqa: S107
    user = User.objects.create(username=name)
    return CubeSession.objects.create(
        user=user,
        token=f"{token}-{name}",
        cube_user_id=1,
        expires_at=timezone.now() + timedelta(seconds=expires_in),
    )


def raw_tokens() -> dict[int, str]:
    table = CubeSession._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, token FROM {table}")
        return dict(cursor.fetchall())


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_flush_deletes_only_expired_rows():
    keep = session_for("fresh")
    session_for("old1", expires_in=-10)
    session_for("old2", expires_in=-3600)
    out, _ = run("connectycube_flush_sessions", "--dry-run")
    assert "2 expired session(s) would be deleted" in out
    assert CubeSession.objects.count() == 3
    out, _ = run("connectycube_flush_sessions")
    assert "Deleted 2 expired session(s)." in out
    assert list(CubeSession.objects.values_list("pk", flat=True)) == [keep.pk]


def test_rotation_re_encrypts_under_the_newest_key(settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TOKEN_KEYS": [OLD]}
    a, b = session_for("a"), session_for("b")
    CubeSession.objects.create(user=User.objects.create(username="empty"), token="")
    before = raw_tokens()
    assert all(Fernet(OLD.encode()).decrypt(before[pk].encode()) for pk in (a.pk, b.pk))

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TOKEN_KEYS": [NEW, OLD]}
    # Old rows stay readable before the rotation.
    assert CubeSession.objects.get(pk=a.pk).token == "tok-a"
    out, err = run("connectycube_rotate_keys", "--batch-size", "1")
    assert "Re-encrypted 2 token(s)" in out
    assert "1 row(s) hold no token" in out
    assert err == ""
    after = raw_tokens()
    for pk, plain in ((a.pk, b"tok-a"), (b.pk, b"tok-b")):
        assert after[pk] != before[pk]
        assert Fernet(NEW.encode()).decrypt(after[pk].encode()) == plain

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TOKEN_KEYS": [NEW]}  # old key dropped
    assert CubeSession.objects.get(pk=b.pk).token == "tok-b"


def test_rows_no_key_can_read_are_reported_not_dropped(settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TOKEN_KEYS": [OLD]}
    lost = session_for("lost")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TOKEN_KEYS": [NEW]}
    kept = session_for("kept")
    out, err = run("connectycube_rotate_keys")
    assert "Re-encrypted 1 token(s)" in out
    assert "1 row(s) could not be decrypted" in err
    assert f"pk {lost.pk}" in err
    assert CubeSession.objects.filter(pk=lost.pk).exists()
    assert CubeSession.objects.get(pk=kept.pk).token == "tok-kept"


def test_default_keys_follow_secret_key_fallbacks(settings):
    row = session_for("x")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-for-this-test-only"
    assert CubeSession.objects.get(pk=row.pk).token == "tok-x"
    run("connectycube_rotate_keys")
    settings.SECRET_KEY_FALLBACKS = []
    assert CubeSession.objects.get(pk=row.pk).token == "tok-x"
