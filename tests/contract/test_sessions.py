"""Contract: application and user sessions, their renewal, and their end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from django_connectycube.client import SessionExpired


def test_an_application_session_reads_and_ends(target):
    session = target.client.create_app_session()
    assert session.token
    assert session.user_id is None
    assert not session.is_user_session
    assert str(session.application_id) == str(target.client.application_id)
    # The expiry comes from CB-Token-ExpirationDate: about two hours ahead.
    assert session.expires_at is not None
    ahead = session.expires_at - datetime.now(timezone.utc)
    assert timedelta(minutes=90) < ahead <= timedelta(hours=2, minutes=5)
    assert target.client.get_session(session.token).user_id is None
    target.client.destroy_session(session.token)
    with pytest.raises(SessionExpired):
        target.client.get_session(session.token)


def test_a_user_session_by_login_and_by_email(target, accounts):
    account = accounts.create()
    by_login = target.client.create_user_session(login=account.login, password=account.password)
    assert by_login.user_id == account.user.id
    assert by_login.user is not None
    assert by_login.user.login == account.login
    by_email = target.client.create_user_session(email=account.email, password=account.password)
    assert by_email.user_id == account.user.id
    assert by_email.token != by_login.token
    for session in (by_login, by_email):
        me = target.client.as_user(session)
        assert me.get_session().user_id == account.user.id
        me.destroy_session()
        with pytest.raises(SessionExpired):
            target.client.get_session(session.token)


def test_an_application_session_upgrades_to_a_user_and_back(target, accounts):
    account = accounts.create()
    session = target.client.create_app_session()
    try:
        # The client has no call for POST/DELETE /login; they are sent as they are.
        headers = {"CB-Token": session.token}
        body = {"login": account.login, "password": account.password}
        answer = target.client.transport.request("POST", "login", headers=headers, json=body)
        assert answer.json()["user"]["id"] == account.user.id
        assert target.client.get_session(session.token).user_id == account.user.id
        target.client.transport.request("DELETE", "login", headers=headers)
        assert target.client.get_session(session.token).user_id is None
    finally:
        target.client.destroy_session(session.token)


def test_a_forgotten_application_session_is_renewed_transparently(target, accounts):
    account = accounts.create()
    token = target.client.app_token()
    # The server forgets the token (as after two idle hours); the next call must not notice.
    target.client.destroy_session(token)
    assert target.client.get_user(account.user.id).id == account.user.id
    assert target.client.app_token() != token
