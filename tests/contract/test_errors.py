"""Contract: the typed errors the site relies on to tell one failure from another."""

from __future__ import annotations

import pytest

from django_connectycube.client import AuthenticationError, NotFound, ValidationError

#: Far beyond any id ConnectyCube has handed out, so it cannot name a real user.
MISSING_ID = 2_000_000_000


def test_a_wrong_password_is_an_authentication_error(target, accounts):
    account = accounts.create()
    with pytest.raises(AuthenticationError) as raised:
        target.client.create_user_session(login=account.login, password="wrong-" + account.password)
    assert raised.value.status == 401


def test_a_taken_login_is_a_validation_error_on_login(target, accounts):
    account = accounts.create()
    with pytest.raises(ValidationError) as raised:
        target.client.create_user(
            login=account.login, password="another-password-1", email="x" + account.email
        )
    assert raised.value.status == 422
    assert "login" in raised.value.field_errors


def test_a_missing_user_is_not_found(target):
    client = target.client
    with pytest.raises(NotFound):
        client.get_user(MISSING_ID)
    with pytest.raises(NotFound):
        client.get_user_by_login("cct-nobody-here")
    with pytest.raises(NotFound):
        client.get_user_by_email("cct-nobody-here@example.com")
    assert client.find_user_by_external_id("cct-nobody-here") is None
