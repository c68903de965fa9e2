"""The client's user look-ups and Admin API at the transport level (``responses``): the exact
requests sent on the wire, and the answers of an application with the v1 look-ups switched off."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from django_connectycube.client import (
    AuthenticationError,
    ConfigurationError,
    ConnectyCubeClient,
    MemoryAppSessionStore,
    NotFound,
    PermissionDenied,
)

API = "https://cc.test"
USER = {"id": 7, "login": "bob", "external_id": "ext-7", "external_user_id": 42}
#: The documented answer of a v1 look-up on an application that has them off.
V1_OFF = {"errors": {"base": ["Users retrieving forbidden in admin panel..."]}}
SESSION = {"session": {"id": 1, "application_id": 1, "token": "app-token-1", "nonce": 1, "ts": 1}}


def page(*users: dict, total: int | None = None) -> dict:
    count = len(users) if total is None else total
    return {"limit": 100, "skip": 0, "total_entries": count, "items": list(users)}


def make_client(**kwargs) -> ConnectyCubeClient:
    kwargs.setdefault("app_session_store", MemoryAppSessionStore())
    return ConnectyCubeClient(API, 1, "auth-key-1", "auth-secret-1", sleep=lambda s: None, **kwargs)


def query(call) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(call.request.url).query)


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{API}/session", status=201, json=SESSION)
        yield mock


def gets(rsps) -> list:
    return [c for c in rsps.calls if c.request.method == "GET"]


# ---- v2 look-ups -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.get_user(7), [("id", "7")]),
        (lambda c: c.get_user_by_login("bob"), [("login", "bob")]),
        (lambda c: c.get_user_by_email("b@x.io"), [("email", "b@x.io")]),
        (lambda c: c.get_user_by_phone("+1555"), [("phone", "+1555")]),
        (lambda c: c.get_user_by_external_id("ext-7"), [("external_id", "ext-7")]),
        (lambda c: c.find_user_by_external_id("ext-7"), [("external_id", "ext-7")]),
        (lambda c: c.find_user(full_name="Bob B"), [("full_name", "Bob B")]),
    ],
)
def test_single_lookups_are_one_v2_query(rsps, call, expected):
    rsps.get(f"{API}/users/v2", json=page(USER))
    assert call(make_client()).id == 7
    (sent,) = gets(rsps)
    assert urlsplit(sent.request.url).path == "/users/v2"
    assert query(sent) == [*expected, ("offset", "0"), ("limit", "1"), ("sort_asc", "id")]


def test_a_miss_is_not_found_or_none(rsps):
    rsps.get(f"{API}/users/v2", json=page())
    client = make_client()
    with pytest.raises(NotFound, match="login='ghost'") as info:
        client.get_user_by_login("ghost")
    assert info.value.status == 404
    assert info.value.messages == ["User not found"]
    assert client.find_user_by_external_id("ghost") is None
    assert client.find_user(login="ghost") is None


def test_find_user_takes_exactly_one_filter():
    client = make_client()
    with pytest.raises(ValueError, match="exactly one"):
        client.find_user(login="a", email="b")
    with pytest.raises(ValueError, match="exactly one"):
        client.find_user()


def test_listings_translate_pages_to_offsets(rsps):
    rsps.get(f"{API}/users/v2", json={**page(USER, total=25), "skip": 10, "limit": 10})
    client = make_client()
    result = client.get_users_by_ids([7, 8], page=2, per_page=10, order_by="id", descending=True)
    assert query(gets(rsps)[0]) == [
        ("id[in][]", "7"),
        ("id[in][]", "8"),
        ("offset", "10"),
        ("limit", "10"),
        ("sort_desc", "id"),
    ]
    assert (result.page, result.per_page, result.total) == (2, 10, 25)
    assert result.next_params() == {"page": 3}
    client.get_users_by_tags("a, b", per_page=5)
    assert query(gets(rsps)[1]) == [
        ("user_tags[in][]", "a"),
        ("user_tags[in][]", "b"),
        ("offset", "0"),
        ("limit", "5"),
    ]
    client.get_users_by_full_name("Bob B", page=3, per_page=4, order_by="login")
    assert query(gets(rsps)[2]) == [
        ("full_name", "Bob B"),
        ("offset", "8"),
        ("limit", "4"),
        ("sort_asc", "login"),
    ]


def test_listing_arguments_are_checked_before_any_request():
    client = make_client()
    with pytest.raises(ValueError, match="per_page"):
        client.get_users_by_ids([1], per_page=0)
    with pytest.raises(ValueError, match="page"):
        client.get_users_by_full_name("x", page=0)
    with pytest.raises(ValueError, match="tag"):
        client.get_users_by_tags(" , ")


def test_other_403s_stay_plain_permission_denied(rsps):
    rsps.get(f"{API}/users/v2", status=403, json={"errors": {"base": ["Forbidden. Need user."]}})
    with pytest.raises(PermissionDenied) as info:
        make_client().get_user(7)
    assert type(info.value) is PermissionDenied


def test_the_same_refusal_of_a_v2_look_up_names_the_other_switches(rsps):
    # "Allow to retrieve a list of users" / "other user's info" refuse v2 with this text too:
    # telling the operator to turn v1 on would send them to the wrong switch.
    rsps.get(f"{API}/users/v2", status=403, json=V1_OFF)
    with pytest.raises(PermissionDenied) as info:
        make_client().get_user(7)
    assert type(info.value) is PermissionDenied
    assert "Allow to retrieve a list of users via API" in str(info.value)
    assert "DISABLE LIST USERS API V1" not in str(info.value)


# ---- Admin API -------------------------------------------------------------------------------


def test_admin_delete_user_sends_the_key_not_a_session(rsps):
    rsps.delete(f"{API}/admin/user/7", json={"success": True})
    client = make_client(admin_api_key="admin-key-XYZ")
    assert client.has_admin_api_key
    assert client.admin_delete_user(7) is None
    (call,) = rsps.calls
    assert call.request.headers["CB-Administration-API-Key"] == "admin-key-XYZ"
    assert "CB-Token" not in call.request.headers


def test_admin_delete_user_errors(rsps):
    client = make_client(admin_api_key="admin-key-XYZ")
    rsps.delete(f"{API}/admin/user/8", status=404, json={"errors": ["User not found"]})
    with pytest.raises(NotFound):
        client.admin_delete_user(8)
    rsps.delete(f"{API}/admin/user/9", status=401, json={"errors": ["Invalid API key"]})
    with pytest.raises(AuthenticationError) as info:
        client.admin_delete_user(9)
    assert "admin-key-XYZ" not in str(info.value)
    rsps.delete(f"{API}/admin/user/10", status=403, json={"errors": ["Plan does not allow"]})
    with pytest.raises(PermissionDenied):
        client.admin_delete_user(10)
    rsps.delete(f"{API}/admin/user/11", json={"success": False})
    with pytest.raises(Exception, match="did not delete user 11"):
        client.admin_delete_user(11)


def test_admin_call_without_a_key_names_the_setting():
    client = make_client()
    assert not client.has_admin_api_key
    with pytest.raises(ConfigurationError, match='CONNECTYCUBE\\["ADMIN_API_KEY"\\]'):
        client.admin_delete_user(7)
