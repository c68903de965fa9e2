"""Contract: sign-up, the look-ups that work on every application, update and delete."""

from __future__ import annotations

import secrets

import pytest

from django_connectycube.client import NotFound

from .conftest import PREFIX, eventually


def phone() -> str:
    return "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))


def test_sign_up_returns_the_fields_sent(target, accounts):
    account = accounts.create(
        full_name=f"Contract {PREFIX} Signup",
        phone=(number := phone()),
        website="https://example.com/me",
        tag_list=[f"{PREFIX}a", f"{PREFIX}b"],
        custom_data={"plan": "pro"},
    )
    user = account.user
    assert user.id > 0
    assert user.login == account.login
    assert user.email == account.email
    assert user.full_name == f"Contract {PREFIX} Signup"
    assert user.phone == number
    assert user.website == "https://example.com/me"
    assert user.tags == [f"{PREFIX}a", f"{PREFIX}b"]
    assert user.custom_data_json == {"plan": "pro"}
    assert user.external_id == account.external_id
    assert user.created_at is not None


def test_every_look_up_finds_the_user(target, accounts):
    tag = f"{PREFIX}look"
    full_name = f"Contract {PREFIX} Lookup"
    number = phone()
    account = accounts.create(full_name=full_name, phone=number, tag_list=[tag])
    other = accounts.create(tag_list=[tag])
    client, user_id = target.client, account.user.id

    assert client.get_user(user_id).login == account.login
    assert eventually(lambda: client.get_user_by_login(account.login)).id == user_id
    assert eventually(lambda: client.get_user_by_email(account.email)).id == user_id
    assert eventually(lambda: client.get_user_by_phone(number)).id == user_id
    assert eventually(lambda: client.get_user_by_external_id(account.external_id)).id == user_id
    assert client.find_user_by_external_id(account.external_id).id == user_id

    def ids_of(page) -> set[int]:
        return {user.id for user in page}

    wanted = {user_id, other.user.id}
    assert ids_of(client.get_users_by_ids([user_id, other.user.id])) == wanted

    def by_full_name() -> set[int]:
        found = ids_of(client.get_users_by_full_name(full_name))
        assert user_id in found
        return found

    assert other.user.id not in eventually(by_full_name)

    def by_tags() -> set[int]:
        found = ids_of(client.get_users_by_tags(tag))
        assert found == wanted
        return found

    eventually(by_tags)


def test_a_user_updates_their_own_profile(target, accounts):
    account = accounts.create(full_name="Before")
    me = accounts.as_user(account)
    updated = me.update_user(full_name="After", custom_data={"x": 1}, tag_list=[f"{PREFIX}up"])
    assert updated.id == account.user.id
    assert updated.full_name == "After"
    assert updated.custom_data_json == {"x": 1}
    assert updated.tags == [f"{PREFIX}up"]
    fetched = target.client.get_user(account.user.id)
    assert fetched.full_name == "After"
    assert fetched.custom_data_json == {"x": 1}


def test_a_user_deletes_themselves(target, accounts):
    account = accounts.create()
    accounts.as_user(account).delete_self()
    account.deleted = True
    with pytest.raises(NotFound):
        target.client.get_user(account.user.id)
    assert target.client.find_user_by_external_id(account.external_id) is None
