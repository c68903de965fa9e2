"""``GET users/?login_prefix=``: finding people by the beginning of their login, as a chat's
search box does, through ConnectyCube's ``login[start_with]`` (4+ characters, 5 results)."""

from __future__ import annotations

import pytest

from tests.api.test_api_users import USERS, cube, me, seed  # noqa: F401 - fixtures

pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]


def test_a_login_prefix_finds_the_users_whose_login_starts_with_it(cube, me):  # noqa: F811
    seed(cube, 3)  # user0, user1, user2
    cube.create_user(login="someone", password="12345678")

    response = me.get(USERS, {"login_prefix": "user"})

    assert response.status_code == 200, response.json()
    assert sorted(p["login"] for p in response.json()["results"]) == ["user0", "user1", "user2"]
    assert cube.request_count("GET /users/v2") >= 1


def test_at_most_five_users_come_back(cube, me):  # noqa: F811
    seed(cube, 7)
    body = me.get(USERS, {"login_prefix": "user", "per_page": 100}).json()
    assert len(body["results"]) == 5


@pytest.mark.parametrize("prefix", ["use", "", "x" * 71])
def test_a_prefix_ConnectyCube_cannot_search_is_a_field_error(cube, me, prefix):  # noqa: F811
    response = me.get(USERS, {"login_prefix": prefix})
    assert response.status_code == 400
    assert "login_prefix" in response.json()


def test_the_exact_login_look_up_still_needs_the_whole_login(cube, me):  # noqa: F811
    seed(cube, 2)
    assert me.get(USERS, {"login": "user"}).json()["results"] == []
