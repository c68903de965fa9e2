import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core import serializers
from django.db import connection
from django.test import override_settings

from django_connectycube.conf import ConfigurationError
from django_connectycube.models import CubeSession, fields

pytestmark = pytest.mark.django_db
TOKEN = "c0ffee5e55i0nt0ken0123456789abcdef"


def make_session(token=TOKEN):
    user = get_user_model().objects.create(username="tok")
    return CubeSession.objects.create(user=user, token=token)


def raw_token(pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT token FROM {CubeSession._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_round_trip_and_no_plaintext_in_the_table():
    session = make_session()
    stored = raw_token(session.pk)
    assert TOKEN not in stored
    assert CubeSession.objects.get(pk=session.pk).token == TOKEN


def test_no_plaintext_in_dumpdata():
    make_session()
    dumped = serializers.serialize("json", CubeSession.objects.all())
    assert TOKEN not in dumped


def test_repr_and_str_hide_the_token():
    session = make_session()
    assert TOKEN not in repr(session)
    assert TOKEN not in str(session)


def test_new_key_first_keeps_old_rows_readable_and_rotation_moves_them(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TOKEN_KEYS": [old]}
    session = make_session()
    encrypted_old = raw_token(session.pk)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TOKEN_KEYS": [new, old]}
    assert CubeSession.objects.get(pk=session.pk).token == TOKEN
    rotated = fields.rotate(encrypted_old)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TOKEN_KEYS": [new]}
    assert fields.decrypt(rotated) == TOKEN
    assert CubeSession.objects.get(pk=session.pk).token is None  # old key dropped too early


def test_default_keys_follow_secret_key_fallbacks(settings):
    session = make_session()
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "brand-new-key", [settings.SECRET_KEY]
    assert CubeSession.objects.get(pk=session.pk).token == TOKEN


def test_any_string_key_is_accepted_through_hkdf():
    with override_settings(CONNECTYCUBE={"TOKEN_KEYS": ["not a fernet key"]}):
        assert fields.decrypt(fields.encrypt("x")) == "x"


def test_empty_key_list_names_the_setting():
    with override_settings(CONNECTYCUBE={"TOKEN_KEYS": []}):
        with pytest.raises(ConfigurationError, match="TOKEN_KEYS"):
            fields.encrypt("x")


def test_field_refuses_indexes():
    with pytest.raises(TypeError):
        fields.EncryptedTextField(db_index=True)


def test_dumpdata_then_loaddata_round_trips(tmp_path):
    session = make_session()
    dumped = serializers.serialize("json", CubeSession.objects.all())
    assert '"token": "fernet:' in dumped
    CubeSession.objects.all().delete()
    for obj in serializers.deserialize("json", dumped):
        obj.save()
    assert CubeSession.objects.get(pk=session.pk).token == TOKEN
    assert TOKEN not in raw_token(session.pk)
