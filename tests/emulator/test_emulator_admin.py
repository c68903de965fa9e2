"""Emulator: the Admin API (``DELETE /admin/user/{id}`` with ``CB-Administration-API-Key``)."""

from __future__ import annotations

import pytest
import requests

from django_connectycube.emulator import Emulator
from tests.emulator.support import Api

KEY = "admin-key-123"


@pytest.fixture
def api(connectycube_emulator: Emulator) -> Api:
    return Api(connectycube_emulator)


def admin_delete(
    api: Api, user_id: object, key: str | None = KEY, suffix: str = ""
) -> requests.Response:
    headers = {} if key is None else {"CB-Administration-API-Key": key}
    return api.delete(f"/admin/user/{user_id}{suffix}", token=None, headers=headers)


@pytest.mark.connectycube_emulator(admin_api_key=KEY)
@pytest.mark.parametrize("suffix", ["", ".json"])
def test_admin_delete_removes_any_user_and_their_sessions(api: Api, suffix: str) -> None:
    """[D admin_api/user.md] no session of the user is needed; the answer is {"success": true}."""
    user = api.signup("cidp_like")
    token = api.user_session("cidp_like")
    api.signup("bystander")
    response = admin_delete(api, user["id"], suffix=suffix)
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert [u["login"] for u in api.emulator.users] == ["bystander"]
    assert api.get("/session", token=token).status_code == 401
    assert api.emulator.request_count("DELETE /admin/user/{id}") == 1


@pytest.mark.connectycube_emulator(admin_api_key=KEY)
def test_admin_delete_refusals(api: Api) -> None:
    user = api.signup("kept")
    missing_header = admin_delete(api, user["id"], key=None)
    assert (missing_header.status_code, missing_header.json()) == (
        401,
        {"errors": ["Administration API key is required"]},
    )
    wrong = admin_delete(api, user["id"], key="not-the-key")
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"errors": ["Invalid Administration API key"]},
    )
    assert [u["login"] for u in api.emulator.users] == ["kept"]
    for missing in (999, "abc"):
        response = admin_delete(api, missing)
        assert (response.status_code, response.json()) == (404, {"errors": ["User not found"]})


def test_admin_api_without_a_key_set_up(api: Api) -> None:
    """A new application has no Administration API key until one is generated."""
    user = api.signup("kept")
    response = admin_delete(api, user["id"], key="any")
    assert (response.status_code, response.json()) == (
        403,
        {"errors": ["Administration API is not enabled for this application"]},
    )
    assert len(api.emulator.users) == 1


@pytest.mark.connectycube_emulator(admin_api_key=KEY)
def test_admin_route_ignores_session_tokens(api: Api) -> None:
    """A user's own token is not an admin key."""
    user = api.signup("self")
    api.user_session("self")
    response = api.delete(f"/admin/user/{user['id']}")
    assert response.status_code == 401
