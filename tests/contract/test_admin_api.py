"""Contract: the Administration API deletes any user, no session of theirs needed."""

from __future__ import annotations

import pytest

from django_connectycube.client import NotFound

from .test_errors import MISSING_ID


def test_the_admin_api_deletes_a_user_without_their_session(admin_target, accounts):
    account = accounts.create()
    admin_target.client.admin_delete_user(account.user.id)
    account.deleted = True
    with pytest.raises(NotFound):
        admin_target.client.get_user(account.user.id)
    # Not by logging in: a password session for an unknown login may create that user anew.
    with pytest.raises(NotFound):
        admin_target.client.get_user_by_login(account.login)


def test_the_admin_api_reports_a_missing_user(admin_target):
    with pytest.raises(NotFound):
        admin_target.client.admin_delete_user(MISSING_ID)
