"""Emulator: user routes, validation, v1 and v2 look-ups, password reset."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from django_connectycube.emulator import Emulator
from tests.emulator.support import Api

USER_NOT_FOUND = {"errors": ["User not found"]}
COULD_NOT_FIND_USER = {"errors": ["Couldn't find user."]}
NEED_USER = {"errors": {"base": ["Forbidden. Need user."]}}
#: The deprecated v1 look-ups are off on a new application; these tests switch them on.
V1 = pytest.mark.connectycube_emulator(v1_users_api=True)


@pytest.fixture
def api(connectycube_emulator: Emulator) -> Api:
    api = Api(connectycube_emulator)
    api.app_session()
    return api


# -- signup -------------------------------------------------------------------------------------


def test_signup_with_app_token_returns_full_user(api: Api) -> None:
    response = api.post(
        "/users",
        json={
            "user": {
                "login": "marvin18",
                "password": "supersecurepwd",
                "email": "awesomeman@gmail.com",
                "full_name": "Marvin Simon",
                "phone": "47802323143",
                "website": "https://dozensofdreams.com",
                "tag_list": "iphone, apple",
                "custom_data": '{"avatar_uid": null}',
                "external_id": "local-7",
                "external_user_id": 7,
                "unknown_field": "ignored",
            }
        },
    )
    assert response.status_code == 201, response.text
    user = response.json()["user"]
    assert user["user_tags"] == "iphone,apple"
    assert user["external_id"] == "local-7" and user["external_user_id"] == 7
    assert "password" not in user and "unknown_field" not in user
    assert {
        "id", "login", "email", "full_name", "phone", "website", "custom_data", "user_tags",
        "avatar", "external_user_id", "external_id", "facebook_id", "twitter_id", "timezone",
        "is_guest", "blob_id", "created_at", "updated_at", "last_request_at",
    } == set(user)  # fmt: skip


def test_signup_with_auth_key_header_and_form_body(api: Api) -> None:
    response = api.post(
        "/users.json",
        data={"user[login]": "formuser", "user[password]": "pw", "user[tag_list][]": ["a", "b"]},
        token=None,
        headers={"CB-AuthKey": api.emulator.auth_key},
    )
    assert response.status_code == 201, response.text
    assert response.json()["user"]["user_tags"] == "a,b"


def test_signup_with_wrong_auth_key_or_nothing(api: Api) -> None:
    body = {"user": {"login": "someone", "password": "pw"}}
    wrong = api.post("/users", json=body, token=None, headers={"CB-AuthKey": "nope"})
    assert wrong.status_code == 401
    none = api.post("/users", json=body, token=None)
    assert none.status_code == 401


@pytest.mark.parametrize(
    ("user", "errors"),
    [
        ({"login": "ab", "password": "p"}, {"login": ["is too short (minimum is 3 characters)"]}),
        (
            {"login": "x" * 71, "password": "p"},
            {"login": ["is too long (maximum is 70 characters)"]},
        ),
        ({"password": "p"}, {"login": ["cannot be blank"]}),
        ({"login": "okname"}, {"password": ["cannot be blank"]}),
        ({"email": "not-an-email", "password": "p"}, {"email": ["is invalid"]}),
        (
            {"login": "tagger", "password": "p", "tag_list": ["1", "2", "3", "4", "5", "6"]},
            {"tag_list": ["is too long (maximum is 5 tags)"]},
        ),
        ({"login": ["a"], "password": "p"}, {"login": ["must be a string"]}),
        (
            {"login": "typed", "password": "p", "full_name": {"x": 1}},
            {"full_name": ["must be a string"]},
        ),
        (
            {"login": "typed", "password": "p", "external_user_id": "abc"},
            {"external_user_id": ["must be an integer"]},
        ),
    ],
)
def test_signup_validation(api: Api, user: dict[str, Any], errors: dict[str, list[str]]) -> None:
    response = api.post("/users", json={"user": user})
    assert (response.status_code, response.json()) == (422, {"errors": errors})


def test_signup_normalises_like_the_docs_examples(api: Api) -> None:
    """[D users.md] "Dacia Kail " is stored trimmed; "pavalli.com.au" gains "http://"."""
    user = api.signup(
        "dacia",
        full_name="Dacia Kail ",
        website="pavalli.com.au",
        phone="+6110797757",
    )
    assert (user["full_name"], user["website"]) == ("Dacia Kail", "http://pavalli.com.au")
    api.user_session("dacia")
    for given, stored in [
        ("https://gabby.com", "https://gabby.com"),
        ("HTTP://upper.example", "HTTP://upper.example"),
        ("ftp://files.example", "ftp://files.example"),
        ("  ", None),
    ]:
        response = api.put(f"/users/{user['id']}", json={"user": {"website": given}})
        assert response.json()["user"]["website"] == stored, given
    blank_name = api.put(f"/users/{user['id']}", json={"user": {"full_name": "   "}})
    assert blank_name.json()["user"]["full_name"] is None


def test_signup_exactly_five_tags_and_boundary_logins(api: Api) -> None:
    assert api.post("/users", json={"user": {"login": "abc", "password": "p"}}).status_code == 201
    assert (
        api.post("/users", json={"user": {"login": "y" * 70, "password": "p"}}).status_code == 201
    )
    five = {"login": "fivetags", "password": "p", "tag_list": "a,b,c,d,e"}
    assert api.post("/users", json={"user": five}).status_code == 201


def test_login_and_email_are_unique_case_insensitively(api: Api) -> None:
    api.signup("Taken", email="taken@example.com")
    response = api.post("/users", json={"user": {"login": "taken", "password": "p"}})
    assert response.json() == {"errors": {"login": ["has already been taken."]}}
    response = api.post(
        "/users", json={"user": {"login": "other", "email": "TAKEN@example.com", "password": "p"}}
    )
    assert response.json() == {"errors": {"email": ["has already been taken."]}}


def test_signup_user_must_be_an_object(api: Api) -> None:
    assert api.post("/users", json={"user": "bob"}).json() == {
        "errors": {"user": ["must be an object"]}
    }
    assert api.post("/users", json={}).json() == {"errors": {"user": ["cannot be blank"]}}


# -- update / delete ----------------------------------------------------------------------------


def test_update_self(api: Api) -> None:
    user = api.signup("upd", email="upd@example.com")
    api.user_session("upd")
    response = api.put(
        f"/users/{user['id']}.json",
        json={"user": {"full_name": "New Name", "tag_list": ["x"], "email": None, "extra": 1}},
    )
    assert response.status_code == 200, response.text
    updated = response.json()["user"]
    assert (updated["full_name"], updated["user_tags"], updated["email"]) == ("New Name", "x", None)
    assert updated["updated_at"] >= user["updated_at"]


def test_update_password_needs_old_password(api: Api) -> None:
    user = api.signup("pwd", password="old-pass")
    api.user_session("pwd", "old-pass")
    path = f"/users/{user['id']}"
    missing = api.put(path, json={"user": {"password": "new-pass"}})
    assert missing.json() == {"errors": {"old_password": ["cannot be blank"]}}
    wrong = api.put(path, json={"user": {"password": "new-pass", "old_password": "nope"}})
    assert wrong.json() == {"errors": {"old_password": ["is invalid"]}}
    ok = api.put(path, json={"user": {"password": "new-pass", "old_password": "old-pass"}})
    assert ok.status_code == 200
    assert api.post("/login", json={"login": "pwd", "password": "new-pass"}).status_code == 200


def test_update_login_uniqueness_and_others_forbidden(api: Api) -> None:
    api.signup("first")
    second = api.signup("second")
    api.user_session("second")
    taken = api.put(f"/users/{second['id']}", json={"user": {"login": "FIRST"}})
    assert taken.json() == {"errors": {"login": ["has already been taken."]}}
    other = api.put("/users/1", json={"user": {"full_name": "hack"}})
    assert (other.status_code, other.json()) == (404, COULD_NOT_FIND_USER)
    missing = api.put("/users/999", json={"user": {"full_name": "hack"}})
    assert (missing.status_code, missing.json()) == (404, COULD_NOT_FIND_USER)
    # Keeping one's own login is not a conflict.
    same = api.put(f"/users/{second['id']}", json={"user": {"login": "second"}})
    assert same.status_code == 200


def test_delete_self_only_and_sessions_die(api: Api) -> None:
    first = api.signup("victim")
    second = api.signup("deleter")
    api.user_session("deleter")
    assert api.delete(f"/users/{first['id']}").json() == COULD_NOT_FIND_USER
    response = api.delete(f"/users/{second['id']}")
    assert (response.status_code, response.content) == (200, b"")
    assert api.get("/session").status_code == 401
    assert [u["login"] for u in api.emulator.users] == ["victim"]


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_put_users_without_an_id(api: Api, suffix: str) -> None:
    """The JS SDK sends ``PUT /users.json`` when it knows no current user [S]."""
    user = api.signup("noid")
    refused = api.put(f"/users{suffix}", json={"user": {"full_name": "x"}})
    assert (refused.status_code, refused.json()) == (403, NEED_USER)
    api.user_session("noid")
    response = api.put(f"/users{suffix}", json={"user": {"full_name": "Current User"}})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == user["id"]
    assert response.json()["user"]["full_name"] == "Current User"


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_delete_users_without_an_id(api: Api, suffix: str) -> None:
    api.signup("doomed")
    refused = api.delete(f"/users{suffix}")
    assert (refused.status_code, refused.json()) == (403, NEED_USER)
    api.user_session("doomed")
    response = api.delete(f"/users{suffix}")
    assert (response.status_code, response.content) == (200, b"")
    assert api.emulator.users == []


def test_delete_by_external_user_id(api: Api) -> None:
    """``/users/external/{id}`` addresses the deprecated integer ``external_user_id`` [D]."""
    api.signup("extern", external_user_id=9, external_id="ext-9")
    api.signup("bystander", external_user_id=10)
    api.user_session("extern")
    assert api.delete("/users/external/10").status_code == 403
    assert api.delete("/users/external/11").json() == USER_NOT_FOUND
    assert api.delete("/users/external/ext-9").status_code == 404  # not the string external_id
    assert api.delete("/users/external/9").status_code == 200
    assert [u["login"] for u in api.emulator.users] == ["bystander"]


# -- single look-ups ----------------------------------------------------------------------------


@V1
def test_every_single_lookup(api: Api) -> None:
    user = api.signup(
        "looky",
        email="looky@example.com",
        phone="+100",
        external_id="ext-1",
        external_user_id=52691165,
        facebook_id="fb1",
        twitter_id="tw1",
    )
    for path, params in [
        (f"/users/{user['id']}", None),
        (f"/users/{user['id']}.json", None),
        ("/users/by_login", {"login": "LOOKY"}),
        ("/users/by_email.json", {"email": "looky@example.com"}),
        ("/users/external/52691165", None),
        ("/users/external/52691165.json", None),
        ("/users/phone", {"phone": "+100"}),
        ("/users/by_facebook_id", {"facebook_id": "fb1"}),
        ("/users/by_twitter_id", {"twitter_id": "tw1"}),
    ]:
        response = api.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["user"]["id"] == user["id"]


@V1
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/users/999", None),
        ("/users/abc", None),
        ("/users/by_login", {"login": "nobody"}),
        ("/users/by_email", {"email": "no@example.com"}),
        ("/users/external/none", None),
        ("/users/external/ext-1", None),
        ("/users/phone", {"phone": "+0"}),
    ],
)
def test_lookups_not_found(api: Api, path: str, params: Any) -> None:
    api.signup("stringy", external_id="ext-1")  # a string external_id is not external_user_id
    response = api.get(path, params=params)
    assert (response.status_code, response.json()) == (404, USER_NOT_FOUND)


@V1
def test_lookup_without_parameter_is_422(api: Api) -> None:
    response = api.get("/users/by_login")
    assert (response.status_code, response.json()) == (
        422,
        {"errors": {"login": ["cannot be blank"]}},
    )


# -- v1 lists -----------------------------------------------------------------------------------


@pytest.fixture
def people(api: Api) -> list[dict[str, Any]]:
    return [
        api.signup("alice", full_name="Alice Smith", tag_list=["red", "blue"]),
        api.signup("bob", full_name="Bob Smith", tag_list=["blue"]),
        api.signup("carol", full_name="Carol Jones", tag_list=["green"]),
        api.signup("dave", full_name="Dave", external_user_id=50),
    ]


def _logins(page: dict[str, Any]) -> list[str]:
    return [item["user"]["login"] for item in page["items"]]


@V1
def test_v1_list_default_page(api: Api, people: list[dict[str, Any]]) -> None:
    page = api.get("/users").json()
    assert (page["current_page"], page["per_page"], page["total_entries"]) == (1, 10, 4)
    assert _logins(page) == ["alice", "bob", "carol", "dave"]


@V1
def test_v1_pagination(api: Api, people: list[dict[str, Any]]) -> None:
    page = api.get("/users", params={"page": 2, "per_page": 3}).json()
    assert _logins(page) == ["dave"]
    assert api.get("/users", params={"per_page": 500}).json()["per_page"] == 100
    bad = api.get("/users", params={"page": 0})
    assert bad.status_code == 422 and "page" in bad.json()["errors"]


@V1
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter[]=number id in {ids}", ["alice", "carol"]),
        ("filter=number id in {ids}", ["alice", "carol"]),
        ("filter[]=string login eq bob", ["bob"]),
        ("filter[]=string login ne bob", ["alice", "carol", "dave"]),
        ("filter[]=number id gt {first}", ["bob", "carol", "dave"]),
        ("filter[]=number id between {first},{second}", ["alice", "bob"]),
        ("filter[]=number external_user_id ge 50", ["dave"]),
        ("filter[]=string login in alice,dave&filter[]=number id lt {third}", ["alice"]),
        ("filter[]=string user_tags in blue", ["alice", "bob"]),
        ("filter[]=date created_at gt 2000-01-01T00:00:00Z", ["alice", "bob", "carol", "dave"]),
        ("order=desc string login", ["dave", "carol", "bob", "alice"]),
        ("order=asc number id&filter[]=string login in carol,alice", ["alice", "carol"]),
    ],
)
def test_v1_filters_and_order(
    api: Api, people: list[dict[str, Any]], query: str, expected: list[str]
) -> None:
    ids = [p["id"] for p in people]
    query = query.format(
        ids=f"{ids[0]},{ids[2]}", first=ids[0], second=ids[1], third=ids[2]
    ).replace(" ", "%20")
    response = api.get(f"/users?{query}")
    assert response.status_code == 200, response.text
    assert _logins(response.json()) == expected


@V1
@pytest.mark.parametrize(
    "query",
    [
        "filter[]=number id",
        "filter[]=float id eq 1",
        "filter[]=number password eq 1",
        "filter[]=number id like 1",
        "filter[]=number id eq abc",
        "order=sideways string login",
    ],
)
def test_v1_invalid_filters_are_422(api: Api, query: str) -> None:
    response = api.get(f"/users?{query.replace(' ', '%20')}")
    assert response.status_code == 422
    assert "errors" in response.json()


@V1
@pytest.mark.parametrize(
    "query",
    [
        "filter[]=string id in {ids}",  # [O js-sdk-releases#80]: matches nothing
        "filter[]=number login eq 5",
        "filter[]=string created_at gt 2000-01-01",
        "filter[]=date id gt 2000-01-01",
    ],
)
def test_v1_filter_of_the_wrong_type_matches_nothing(
    api: Api, people: list[dict[str, Any]], query: str
) -> None:
    ids = ",".join(str(p["id"]) for p in people)
    response = api.get(f"/users?{query.format(ids=ids).replace(' ', '%20')}&per_page=10")
    assert response.status_code == 200, response.text
    # [O] {"current_page": 1, "items": [], "per_page": 0, "total_entries": 0}
    assert response.json() == {"current_page": 1, "per_page": 0, "total_entries": 0, "items": []}


@V1
def test_v1_empty_page_reports_per_page_zero(api: Api, people: list[dict[str, Any]]) -> None:
    beyond = api.get("/users", params={"page": 3, "per_page": 2}).json()
    assert (beyond["per_page"], beyond["total_entries"], beyond["items"]) == (0, 4, [])
    full = api.get("/users", params={"page": 2, "per_page": 2}).json()
    assert full["per_page"] == 2


@V1
@pytest.mark.parametrize("date", ["2000-01-01", "2000.01.01", "2000-01-01T00:00:00Z"])
def test_v1_date_filter_forms(api: Api, people: list[dict[str, Any]], date: str) -> None:
    """[D] "date format must be yyyy-mm-dd or yyyy.mm.dd"."""
    response = api.get(f"/users?filter[]=date%20created_at%20gt%20{date}")
    assert _logins(response.json()) == ["alice", "bob", "carol", "dave"]


@V1
def test_v1_by_full_name_and_by_tags(api: Api, people: list[dict[str, Any]]) -> None:
    page = api.get("/users/by_full_name", params={"full_name": "smith"}).json()
    assert _logins(page) == ["alice", "bob"]
    both_encodings = [
        api.get("/users/by_tags", params={"tags": "blue,green"}).json(),
        api.get("/users/by_tags", params={"tags[]": ["blue", "green"]}).json(),
    ]
    for page in both_encodings:
        assert _logins(page) == ["alice", "bob", "carol"]
    paged = api.get("/users/by_tags", params={"tags": "blue", "per_page": 1, "page": 2}).json()
    assert _logins(paged) == ["bob"] and paged["total_entries"] == 2


# -- v2 -----------------------------------------------------------------------------------------


def _v2(api: Api, params: Any) -> Any:
    return api.get("/users/v2", params=params)


def _v2_logins(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [u["login"] for u in response.json()["items"]]


def test_v2_shape_and_exact_filter(api: Api, people: list[dict[str, Any]]) -> None:
    response = _v2(api, {"login": "bob"})
    body = response.json()
    assert (body["limit"], body["skip"], body["total_entries"]) == (100, 0, 1)
    assert body["items"][0]["login"] == "bob" and "user" not in body["items"][0]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"login[in][]": ["alice", "carol"]}, ["alice", "carol"]),
        ({"login[in]": "alice,carol"}, ["alice", "carol"]),
        ({"login[nin][]": ["alice"], "full_name[start_with]": "Bob "}, ["bob"]),
        ({"full_name[start_with]": "Caro"}, ["carol"]),
        ({"user_tags": "blue"}, ["alice", "bob"]),
        ({"user_tags[in][]": ["green", "red"]}, ["alice", "carol"]),
        ({"user_tags[nin][]": ["blue"], "login[in]": "carol,dave,bob"}, ["carol", "dave"]),
        ({"login[in]": "alice,bob,carol", "sort_desc": "login"}, ["carol", "bob", "alice"]),
        ({"login[in]": "alice,bob,carol", "sort_asc": "full_name"}, ["alice", "bob", "carol"]),
        ({"login[in]": "alice,bob,carol", "offset": 1, "limit": 1}, ["bob"]),
        (
            {"login[in]": "alice,bob", "created_at[gt]": "2000-01-01T00:00:00Z"},
            ["alice", "bob"],
        ),
        ({"login[in]": "alice,bob", "updated_at[lte]": "2000-01-01T00:00:00Z"}, []),
    ],
)
def test_v2_filters(
    api: Api, people: list[dict[str, Any]], params: dict[str, Any], expected: list[str]
) -> None:
    assert _v2_logins(_v2(api, params)) == expected


def test_v2_date_forms_the_clients_send(api: Api, people: list[dict[str, Any]]) -> None:
    """[D] ISO strings and Unix timestamps; [S] the JS SDK also writes ``String(new Date())``."""
    created = api.emulator.users[0]["created_at"]  # e.g. 2024-05-01T10:00:00Z
    moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    earlier = moment - timedelta(days=1)
    for form in [
        earlier.strftime("%Y-%m-%dT%H:%M:%SZ"),
        earlier.strftime("%Y-%m-%dT%H:%M:%S.000Z"),  # Date.toISOString()
        earlier.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        str(int(earlier.timestamp())),  # seconds, as the docs' example
        str(int(earlier.timestamp() * 1000)),  # Date.now() milliseconds
        earlier.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"),
        earlier.strftime("%a, %d %b %Y %H:%M:%S GMT"),  # Date.toUTCString()
        earlier.strftime("%Y-%m-%d"),
    ]:
        response = _v2(api, {"login[in]": "alice,bob", "created_at[gt]": form})
        assert _v2_logins(response) == ["alice", "bob"], form
        none = _v2(api, {"login[in]": "alice,bob", "created_at[lt]": form})
        assert _v2_logins(none) == [], form


def test_v2_date_with_a_plain_value_is_eq(api: Api, people: list[dict[str, Any]]) -> None:
    """[D] ``phone=...&last_request_at=2020-11-09T08:21:41Z`` is a valid query."""
    alice = api.emulator.users[0]
    exact = _v2(api, {"login": "alice", "created_at": alice["created_at"]})
    assert _v2_logins(exact) == ["alice"]
    assert _v2_logins(_v2(api, {"login": "alice", "created_at": "2000-01-01T00:00:00Z"})) == []


def test_v2_id_filters(api: Api, people: list[dict[str, Any]]) -> None:
    ids = [p["id"] for p in people]
    assert _v2_logins(_v2(api, {"id": ids[1]})) == ["bob"]
    assert _v2_logins(_v2(api, {"id[in][]": [ids[0], ids[3]]})) == ["alice", "dave"]


class _NoScan(dict):
    """A user table that refuses to be walked: a look-up must go through the store's indexes."""

    def values(self):  # type: ignore[override]
        raise AssertionError("the v2 page scanned every stored user")

    def __iter__(self):
        raise AssertionError("the v2 page scanned every stored user")


@pytest.mark.parametrize(
    "params",
    [
        {"id": "{bob_id}"},
        {"id[in][]": ["{bob_id}", "999999"]},
        {"login": "bob"},
        {"login[in]": "bob,nobody"},
        {"email": "bob@example.com"},
        {"external_id[in][]": ["ext-bob"]},
        {"external_id": "ext-bob", "user_tags[nin][]": ["green"]},
    ],
)
def test_v2_by_an_indexed_field_reads_only_the_named_users(api: Api, params: dict) -> None:
    """Its cost does not grow with the users stored: ids, external ids, logins and e-mails."""
    api.signup(login="alice", email="alice@example.com", external_id="ext-alice")
    bob = api.signup(login="bob", email="bob@example.com", external_id="ext-bob")
    store = api.emulator.store
    params = {
        key: [v.format(bob_id=bob["id"]) for v in value]
        if isinstance(value, list)
        else value.format(bob_id=bob["id"])
        for key, value in params.items()
    }
    store.users = _NoScan(store.users)
    assert _v2_logins(_v2(api, params)) == ["bob"]


def test_v2_index_folds_case_but_the_filter_compares_exactly(api: Api) -> None:
    api.signup(login="bob", email="bob@example.com")
    assert _v2_logins(_v2(api, {"login": "BOB"})) == []
    assert _v2_logins(_v2(api, {"login[in]": "bob,BOB,Bob"})) == ["bob"]


def test_v2_start_with_forces_limit_five(api: Api) -> None:
    for index in range(7):
        api.signup(f"prefix{index}")
    body = _v2(api, {"login[start_with]": "pref"}).json()
    assert body["limit"] == 5 and body["total_entries"] == 7 and len(body["items"]) == 5


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"created_at[gt]": "2000-01-01"},
        {"limit": 10},
        {"login": "a", "limit": 101},
        {"login": "a", "limit": "many"},
        {"login": "a", "offset": -1},
        {"login[start_with]": "abc"},
        {"password": "x"},
        {"login[like]": "x"},
        {"login": "a", "sort_asc": "password"},
        {"login": "a", "sort_asc": "id", "sort_desc": "id"},
        {"id": "abc"},
        # [D users.md] invalid queries: exclude or compare operators alone, short start_with
        {"login[nin][]": "admin19"},
        {"user_tags[nin][]": "guest"},
        {"last_request_at": "2017-07-06T11:21:41Z"},
        {"created_at[gte]": "2019-11-06T09:21:41Z"},
        {"login": "a", "id[gt]": "5"},
        {"login": "a", "created_at[gt]": "yesterday"},
        {"login": "a", "created_at[eq]": "2000-01-01"},
    ],
)
def test_v2_validation(api: Api, params: dict[str, Any]) -> None:
    response = _v2(api, params)
    assert response.status_code == 422, response.text
    assert "errors" in response.json()


# -- password reset -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_password_reset_records_email(api: Api, method: str) -> None:
    user = api.signup("forgetful", email="forgetful@example.com")
    kwargs: dict[str, Any] = (
        {"params": {"email": "forgetful@example.com"}}
        if method == "GET"
        else {"json": {"email": "forgetful@example.com"}}
    )
    response = api.call(method, "/users/password/reset.json", **kwargs)
    assert (response.status_code, response.content) == (200, b"")
    outbox = api.emulator.outbox
    assert len(outbox) == 1
    assert outbox[0]["to"] == "forgetful@example.com" and outbox[0]["user_id"] == user["id"]


def test_password_reset_unknown_email_is_quiet(api: Api) -> None:
    response = api.post("/users/password/reset", json={"email": "nobody@example.com"})
    assert response.status_code == 200
    assert api.emulator.outbox == []
    assert api.post("/users/password/reset", json={}).status_code == 422
