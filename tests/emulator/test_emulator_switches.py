"""Emulator: the dashboard switches, at a new application's defaults and changed."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from django_connectycube.emulator import Emulator
from django_connectycube.emulator.cli import build_parser, make_server
from django_connectycube.emulator.control_access import CONTROL_HEADER
from tests.emulator.support import Api

FORBIDDEN_TEXT = (
    "Users retrieving forbidden in admin panel, application settings. "
    "Setup it here https://admin.connectycube.com/apps/{app}/service/users/settings"
)

#: Every v1 look-up that "DISABLE LIST USERS API V1" blocks (the dashboard's list, plus the
#: deprecated by_full_name and phone look-ups).
V1_ROUTES = [
    ("/users", None),
    ("/users.json", {"per_page": 5}),
    ("/users/{id}", None),
    ("/users/{id}.json", None),
    ("/users/by_login", {"login": "someone"}),
    ("/users/by_email", {"email": "someone@example.com"}),
    ("/users/by_full_name", {"full_name": "Some One"}),
    ("/users/by_facebook_id", {"facebook_id": "fb"}),
    ("/users/by_twitter_id", {"twitter_id": "tw"}),
    ("/users/by_tags", {"tags": "t"}),
    ("/users/external/{external_user_id}", None),
    ("/users/phone", {"phone": "+1555"}),
]


def forbidden(emulator: Emulator) -> dict[str, Any]:
    return {"errors": {"base": [FORBIDDEN_TEXT.format(app=emulator.application_id)]}}


@pytest.fixture
def api(connectycube_emulator: Emulator) -> Api:
    api = Api(connectycube_emulator)
    api.app_session()
    return api


@pytest.fixture
def someone(api: Api) -> dict[str, Any]:
    return api.signup(
        "someone",
        email="someone@example.com",
        full_name="Some One",
        phone="+1555",
        facebook_id="fb",
        twitter_id="tw",
        tag_list="t",
        external_user_id=77,
    )


# -- defaults -----------------------------------------------------------------------------------


def test_a_new_applications_defaults(connectycube_emulator: Emulator) -> None:
    config = connectycube_emulator.config
    assert {key: config[key] for key in (
        "v1_users_api", "allow_users_list", "allow_other_user_info",
        "require_email_confirmation", "online_users_api", "admin_api_key",
    )} == {
        "v1_users_api": False, "allow_users_list": True, "allow_other_user_info": True,
        "require_email_confirmation": False, "online_users_api": False, "admin_api_key": None,
    }  # fmt: skip


@pytest.mark.parametrize(("path", "params"), V1_ROUTES)
def test_every_v1_lookup_is_refused_by_default(
    api: Api, someone: dict[str, Any], path: str, params: Any
) -> None:
    path = path.format(id=someone["id"], external_user_id=77)
    response = api.get(path, params=params)
    assert (response.status_code, response.json()) == (403, forbidden(api.emulator))


@pytest.mark.parametrize(("path", "params"), V1_ROUTES)
@pytest.mark.connectycube_emulator(v1_users_api=True)
def test_every_v1_lookup_answers_once_enabled(
    api: Api, someone: dict[str, Any], path: str, params: Any
) -> None:
    path = path.format(id=someone["id"], external_user_id=77)
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    found = [item["user"] for item in body["items"]] if "items" in body else [body["user"]]
    assert [user["id"] for user in found] == [someone["id"]]


def test_v2_works_on_a_default_application(api: Api, someone: dict[str, Any]) -> None:
    response = api.get("/users/v2", params={"login": "someone"})
    assert response.status_code == 200
    assert [u["id"] for u in response.json()["items"]] == [someone["id"]]


def test_the_refusal_names_the_application(api: Api) -> None:
    api.emulator.configure(application_id=4242)
    api.app_session()
    assert api.get("/users").json() == forbidden(api.emulator)
    assert "/apps/4242/" in api.get("/users").json()["errors"]["base"][0]


@pytest.mark.connectycube_emulator(v1_users_api=True, allow_users_list=False)
def test_the_marker_configures_one_test(connectycube_emulator: Emulator) -> None:
    assert connectycube_emulator.v1_users_api is True
    assert connectycube_emulator.allow_users_list is False


def test_the_marker_leaves_other_tests_at_the_defaults(connectycube_emulator: Emulator) -> None:
    assert connectycube_emulator.v1_users_api is False
    assert connectycube_emulator.allow_users_list is True


def test_reset_restores_the_switches(connectycube_emulator: Emulator) -> None:
    connectycube_emulator.configure(v1_users_api=True, admin_api_key="k")
    connectycube_emulator.reset()
    assert connectycube_emulator.config["v1_users_api"] is False
    assert connectycube_emulator.config["admin_api_key"] is None


def test_switches_through_the_control_api(api: Api) -> None:
    url = f"{api.base}/_emulator/config"
    response = requests.post(
        url,
        json={"v1_users_api": "true", "admin_api_key": "secret-key"},
        headers={CONTROL_HEADER: "1"},
        timeout=5,
    )
    config = response.json()["config"]
    assert (config["v1_users_api"], config["admin_api_key"]) == (True, "secret-key")
    assert api.get("/users").status_code == 200
    bad = requests.post(
        url, json={"allow_users_list": "maybe"}, headers={CONTROL_HEADER: "1"}, timeout=5
    )
    assert (bad.status_code, bad.json()) == (
        422,
        {"errors": {"allow_users_list": ["must be a boolean"]}},
    )
    assert (
        requests.post(
            url, json={"admin_api_key": 5}, headers={CONTROL_HEADER: "1"}, timeout=5
        ).status_code
        == 422
    )


def test_switches_as_constructor_arguments() -> None:
    emulator = Emulator(v1_users_api=True, allow_other_user_info=False, admin_api_key="k")
    assert emulator.v1_users_api is True and emulator.allow_other_user_info is False
    emulator.configure(v1_users_api=False)
    emulator.reset()
    assert emulator.v1_users_api is True  # back to what it was created with


def test_cli_flags_set_every_switch() -> None:
    defaults = vars(build_parser().parse_args([]))
    assert make_server(defaults).emulator.config["v1_users_api"] is False
    options = vars(
        build_parser().parse_args(
            [
                "--enable-v1-users-api",
                "--deny-users-list",
                "--deny-other-user-info",
                "--require-email-confirmation",
                "--enable-online-users-api",
                "--admin-api-key",
                "KEY",
            ]
        )
    )
    config = make_server(options).emulator.config
    assert {
        key: config[key]
        for key in (
            "v1_users_api",
            "allow_users_list",
            "allow_other_user_info",
            "require_email_confirmation",
            "online_users_api",
            "admin_api_key",
        )
    } == {
        "v1_users_api": True,
        "allow_users_list": False,
        "allow_other_user_info": False,
        "require_email_confirmation": True,
        "online_users_api": True,
        "admin_api_key": "KEY",
    }


# -- "Allow to retrieve a list of users via API" ------------------------------------------------


@pytest.mark.connectycube_emulator(v1_users_api=True, allow_users_list=False)
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/users", None),
        ("/users/by_full_name", {"full_name": "Some"}),
        ("/users/by_tags", {"tags": "t"}),
        ("/users/v2", {"login": "someone"}),
    ],
)
def test_users_list_denied(api: Api, someone: dict[str, Any], path: str, params: Any) -> None:
    response = api.get(path, params=params)
    assert (response.status_code, response.json()) == (403, forbidden(api.emulator))


@pytest.mark.connectycube_emulator(v1_users_api=True, allow_users_list=False)
def test_users_list_denied_keeps_single_lookups(api: Api, someone: dict[str, Any]) -> None:
    assert api.get(f"/users/{someone['id']}").status_code == 200
    assert api.get("/users/by_login", params={"login": "someone"}).status_code == 200


# -- "Allow to retrieve other user's info" ------------------------------------------------------


@pytest.mark.connectycube_emulator(allow_other_user_info=False)
def test_other_user_info_denied_on_v2(api: Api, someone: dict[str, Any]) -> None:
    api.signup("myself")
    refused = api.get("/users/v2", params={"login": "someone"})
    assert (refused.status_code, refused.json()) == (403, forbidden(api.emulator))
    api.user_session("myself")
    assert api.get("/users/v2", params={"login": "someone"}).status_code == 403
    mine = api.get("/users/v2", params={"login": "myself"})
    assert mine.status_code == 200 and mine.json()["items"][0]["login"] == "myself"
    nobody = api.get("/users/v2", params={"login": "nobody"})
    assert nobody.status_code == 200 and nobody.json()["items"] == []


@pytest.mark.connectycube_emulator(allow_other_user_info=False, v1_users_api=True)
def test_other_user_info_denied_on_v1(api: Api, someone: dict[str, Any]) -> None:
    me = api.signup("myself")
    api.user_session("myself")
    assert api.get(f"/users/{someone['id']}").status_code == 403
    assert api.get(f"/users/{me['id']}").status_code == 200
    assert api.get("/users/by_tags", params={"tags": "t"}).status_code == 403


# -- "Require email confirmation" ---------------------------------------------------------------


def _confirmation_link(emulator: Emulator, email: str) -> str:
    [mail] = [m for m in emulator.outbox if m["to"] == email]
    match = re.search(r"https?://\S+/user_email/confirm_email\?token=\w+", mail["body"])
    assert match, mail
    return match.group(0)


@pytest.mark.connectycube_emulator(require_email_confirmation=True)
def test_signup_needs_an_email(api: Api) -> None:
    response = api.post("/users", json={"user": {"login": "noemail", "password": "pw1"}})
    assert (response.status_code, response.json()) == (
        422,
        {"errors": {"email": ["cannot be blank"]}},
    )


@pytest.mark.connectycube_emulator(require_email_confirmation=True)
def test_login_refused_until_the_link_is_followed(api: Api) -> None:
    user = api.signup("confirmer", email="confirmer@example.com")
    body = api.session_body(user={"login": "confirmer", "password": "password1"})
    refused = api.post("/session", json=body, token=None)
    assert (refused.status_code, refused.json()) == (
        403,
        {"errors": {"base": ["Email is not confirmed"]}},
    )
    login = api.post("/login", json={"login": "confirmer", "password": "password1"})
    assert login.status_code == 403
    wrong = api.post(
        "/session", json=api.session_body(user={"login": "confirmer", "password": "x"})
    )
    assert wrong.status_code == 401  # a wrong password is still a wrong password
    [state] = [u for u in api.emulator.users if u["id"] == user["id"]]
    assert state["email_confirmed"] is False
    link = _confirmation_link(api.emulator, "confirmer@example.com")
    followed = requests.get(link, timeout=5)
    assert followed.status_code == 200
    assert api.post("/session", json=body, token=None).status_code == 201
    assert requests.get(link, timeout=5).status_code == 404  # a link works once


@pytest.mark.connectycube_emulator(require_email_confirmation=True)
def test_session_that_creates_its_user_needs_confirmation_too(api: Api) -> None:
    no_email = api.post("/session", json=api.session_body(user={"login": "auto", "password": "p"}))
    assert (no_email.status_code, no_email.json()) == (
        422,
        {"errors": {"email": ["cannot be blank"]}},
    )
    body = api.session_body(user={"email": "auto@example.com", "password": "pw1"})
    assert api.post("/session", json=body).status_code == 403
    [user] = api.emulator.users
    api.emulator.confirm_email(user["id"])
    assert api.post("/session", json=body).status_code == 201


@pytest.mark.connectycube_emulator(require_email_confirmation=True)
def test_guests_and_earlier_users_need_no_confirmation(api: Api) -> None:
    guest = api.post("/session", json=api.session_body(user={"guest": "1", "full_name": "G"}))
    assert guest.status_code == 201
    api.emulator.configure(require_email_confirmation=False)
    api.signup("earlier")
    api.emulator.configure(require_email_confirmation=True)
    assert api.user_session("earlier")


# -- "Enable Online Users API" ------------------------------------------------------------------


def test_online_users_api_is_off_by_default(api: Api) -> None:
    response = api.get("/users/online")
    assert response.status_code == 403
    assert "Online Users API" in response.json()["errors"]["base"][0]


@pytest.mark.connectycube_emulator(online_users_api=True)
def test_online_users_and_their_count(api: Api) -> None:
    """[S] JS SDK 6: ``listOnline`` → ``{"users": [...]}``, ``getOnlineCount`` → ``{"count"}``."""
    first = api.signup("online1")
    second = api.signup("online2")
    api.signup("offline")
    api.user_session("online2")
    api.user_session("online1")
    listed = api.get("/users/online.json")
    assert listed.status_code == 200, listed.text
    assert [u["id"] for u in listed.json()["users"]] == [first["id"], second["id"]]
    assert (
        api.get("/users/online", params={"limit": 1, "offset": 1}).json()["users"][0]["id"]
        == (second["id"])
    )
    assert api.get("/users/online", params={"count": "true"}).json() == {"count": 2}
    api.emulator.advance_clock(7201)
    api.user_session("online2")
    assert api.get("/users/online", params={"count": True}).json() == {"count": 1}
