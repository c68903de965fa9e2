"""Emulator: sessions, logins, signatures, expiry, identity providers."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from django_connectycube.emulator import Emulator, mint_firebase_token
from tests.emulator.support import Api

NO_SESSION = {"errors": {"base": ["Required session does not exist"]}}
NEED_USER = {"errors": {"base": ["Forbidden. Need user."]}}
TOKEN_REQUIRED = {"errors": ["Token is required"]}


@pytest.fixture
def api(connectycube_emulator: Emulator) -> Api:
    return Api(connectycube_emulator)


def test_session_needs_known_application_and_key(api: Api) -> None:
    assert api.post("/session", json={"auth_key": "x"}).json() == {
        "errors": {"application_id": ["cannot be blank"]}
    }
    response = api.post("/session", json={"application_id": 99, "auth_key": api.emulator.auth_key})
    assert (response.status_code, response.json()) == (422, {"errors": ["Unknown application"]})
    response = api.post("/session", json={"application_id": 1, "auth_key": "wrong"})
    assert (response.status_code, response.json()) == (422, {"errors": ["Unexpected auth key"]})


# -- session objects, headers, routes -----------------------------------------------------------


def test_application_session_shape_and_expiry_header(api: Api) -> None:
    before = api.emulator.now()
    response = api.post("/session", json=api.session_body())
    assert response.status_code == 201
    session = response.json()["session"]
    assert set(session) == {
        "id", "user_id", "application_id", "token", "nonce", "ts", "created_at", "updated_at",
    }  # fmt: skip
    assert session["user_id"] is None and session["application_id"] == 1
    assert session["created_at"].endswith("Z")
    expiry = datetime.strptime(
        response.headers["CB-Token-ExpirationDate"], "%Y-%m-%d %H:%M:%S UTC"
    ).replace(tzinfo=timezone.utc)
    assert 7190 <= (expiry - before).total_seconds() <= 7210


def test_user_session_autocreates_user_then_checks_password(api: Api) -> None:
    body = api.session_body(user={"login": "newbie", "password": "secret1"})
    first = api.post("/session", json=body)
    assert first.status_code == 201
    assert first.json()["session"]["user"]["login"] == "newbie"
    assert "password" not in first.json()["session"]["user"]
    again = api.post("/session", json=body)
    assert again.json()["session"]["user_id"] == first.json()["session"]["user_id"]
    wrong = api.post("/session", json=api.session_body(user={"login": "newbie", "password": "x"}))
    assert (wrong.status_code, wrong.json()) == (401, {"errors": ["Invalid password"]})


def test_user_session_by_email(api: Api) -> None:
    api.signup("emailer", email="em@example.com")
    response = api.post(
        "/session", json=api.session_body(user={"email": "EM@example.com", "password": "password1"})
    )
    assert response.status_code == 201
    assert response.json()["session"]["user"]["login"] == "emailer"


def test_deny_auto_create_answers_user_not_found(api: Api) -> None:
    api.emulator.configure(deny_auto_create=True)
    response = api.post("/session", json=api.session_body(user={"login": "ghost", "password": "p"}))
    assert (response.status_code, response.json()) == (404, {"errors": ["User not found"]})
    assert api.emulator.users == []


def test_get_and_delete_session(api: Api) -> None:
    api.signup("sam")
    token = api.user_session("sam")
    response = api.get("/session")
    assert response.status_code == 200
    assert response.json()["session"]["token"] == token
    assert response.json()["session"]["user"]["login"] == "sam"
    deleted = api.delete("/session")
    assert (deleted.status_code, deleted.content) == (200, b"")
    assert api.get("/session").json() == NO_SESSION


def test_unknown_token_is_401(api: Api) -> None:
    response = api.get("/session", token="nope")
    assert (response.status_code, response.json()) == (401, NO_SESSION)
    assert "CB-Token-ExpirationDate" not in response.headers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/session"),
        ("DELETE", "/session"),
        ("POST", "/login"),
        ("GET", "/users/v2?login=abc"),
        ("GET", "/users/1"),
        ("PUT", "/users/1.json"),
        ("PUT", "/users.json"),
        ("POST", "/users"),
        ("POST", "/blobs"),
        ("GET", "/blobs/1.json"),
    ],
)
def test_no_token_at_all_is_token_required(api: Api, method: str, path: str) -> None:
    """Only an unknown or expired token is "Required session does not exist" [O]."""
    response = api.call(method, path, token=None)
    assert (response.status_code, response.json()) == (401, TOKEN_REQUIRED)
    empty = api.call(method, path, token=None, headers={"CB-Token": ""})
    assert (empty.status_code, empty.json()) == (401, TOKEN_REQUIRED)


def test_login_upgrades_and_logout_downgrades_the_same_token(api: Api) -> None:
    api.signup("lou")
    token = api.app_session()
    response = api.post("/login", json={"login": "lou", "password": "password1"})
    assert response.status_code == 200
    assert response.json()["user"]["login"] == "lou"
    assert api.get("/session").json()["session"]["user_id"] == response.json()["user"]["id"]
    assert api.delete("/login").status_code == 200
    session = api.get("/session").json()["session"]
    assert session["token"] == token and session["user_id"] is None


def test_login_form_encoded_with_email(api: Api) -> None:
    api.signup("formy", email="formy@example.com")
    api.app_session()
    response = api.post("/login", data={"email": "formy@example.com", "password": "password1"})
    assert response.status_code == 200, response.text


def test_login_wrong_password(api: Api) -> None:
    api.signup("lou")
    api.app_session()
    response = api.post("/login", json={"login": "lou", "password": "bad"})
    assert (response.status_code, response.json()) == (401, {"errors": ["Invalid password"]})


def test_login_needs_a_session(api: Api) -> None:
    response = api.post("/login", json={"login": "lou", "password": "x"}, token=None)
    assert (response.status_code, response.json()) == (401, TOKEN_REQUIRED)


def test_guest_session_lasts_a_day(api: Api) -> None:
    response = api.post(
        "/session", json=api.session_body(user={"guest": "1", "full_name": "Guest"})
    )
    assert response.status_code == 201
    user = response.json()["session"]["user"]
    assert user["is_guest"] is True and user["full_name"] == "Guest"
    # [D auth.mdx] "login": "guest_login_328A465366359BDDB984904D49EAD187B524", "phone": ""
    assert re.fullmatch(r"guest_login_[0-9A-F]{36}", user["login"]), user["login"]
    assert user["phone"] == ""
    api.token = response.json()["session"]["token"]
    api.emulator.advance_clock(3 * 3600)
    assert api.get("/session").status_code == 200


# -- expiry (sliding, on the emulator's clock) --------------------------------------------------


def test_session_expires_two_hours_after_last_use(api: Api) -> None:
    api.app_session()
    api.emulator.advance_clock(7200 - 5)
    assert api.get("/session").status_code == 200  # slides the window
    api.emulator.advance_clock(7200 - 5)
    response = api.get("/session")
    assert response.status_code == 200
    expiry = datetime.strptime(
        response.headers["CB-Token-ExpirationDate"], "%Y-%m-%d %H:%M:%S UTC"
    ).replace(tzinfo=timezone.utc)
    assert abs((expiry - api.emulator.now()).total_seconds() - 7200) < 5
    api.emulator.advance_clock(7201)
    assert api.get("/session").json() == NO_SESSION
    assert api.emulator.sessions == []


def test_expiry_via_control_clock(api: Api) -> None:
    api.app_session()
    assert api.post("/_emulator/clock", json={"advance": 7201}).status_code == 200
    assert api.get("/session").status_code == 401


# -- read-only application sessions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/users/1", {"user": {"full_name": "x"}}),
        ("DELETE", "/users/1", None),
        ("DELETE", "/users/external/ext-1", None),
        ("POST", "/blobs", {"blob": {"content_type": "text/plain", "name": "a"}}),
        ("PUT", "/blobs/1/complete", {"size": 1}),
        ("DELETE", "/blobs/1", None),
    ],
)
def test_application_session_is_read_only(api: Api, method: str, path: str, body: Any) -> None:
    api.signup("owner", external_id="ext-1")
    api.app_session()
    response = api.call(method, path, json=body)
    assert (response.status_code, response.json()) == (403, NEED_USER)
    assert "CB-Token-ExpirationDate" in response.headers


def test_application_session_can_read(api: Api) -> None:
    user = api.signup("reader")
    api.app_session()
    response = api.get("/users/v2", params={"id": user["id"]})
    assert response.status_code == 200 and response.json()["items"][0]["id"] == user["id"]


# -- Custom Identity Provider -------------------------------------------------------------------


class _Verifier(BaseHTTPRequestHandler):
    """A CIdP verification endpoint shaped like the official starter kit."""

    tokens: dict[str, dict[str, Any]] = {}
    calls: list[str] = []

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        token = query.get("token", [""])[0]
        self.calls.append(token)
        identity = self.tokens.get(token)
        if identity is None:
            body, status = b'{"error": "invalid token"}', 422
        else:
            body, status = json.dumps(identity).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def cidp_url() -> Iterator[str]:
    _Verifier.tokens = {
        "good-token": {
            "uid": 4242,
            "login": "idp_alice",
            "email": "alice@idp.example",
            "user": {"id": 4242, "login": "idp_alice", "name": "Alice Idp"},
        }
    }
    _Verifier.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Verifier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/user/verify"
    server.shutdown()
    server.server_close()


def test_cidp_login_creates_user_once(api: Api, cidp_url: str) -> None:
    api.emulator.configure(cidp_url=cidp_url)
    body = api.session_body(user={"login": "good-token", "password": "random-1"})
    first = api.post("/session", json=body)
    assert first.status_code == 201, first.text
    user = first.json()["session"]["user"]
    assert (user["login"], user["email"], user["external_id"]) == (
        "idp_alice",
        "alice@idp.example",
        "4242",
    )
    second = api.post(
        "/session", json=api.session_body(user={"login": "good-token", "password": "random-2"})
    )
    assert second.json()["session"]["user_id"] == user["id"]
    assert _Verifier.calls == ["good-token", "good-token"]
    state_user = api.emulator.users[0]
    assert state_user["has_password"] is False and state_user["source"] == "cidp"


def test_cidp_login_through_post_login_with_mapping(api: Api, cidp_url: str) -> None:
    api.emulator.configure(
        cidp_url=cidp_url,
        cidp_response_mapping={
            "uid": "#{user.id}",
            "login": "idp-#{user.login}",
            "full_name": "#{user.name}",
        },
    )
    api.app_session()
    response = api.post("/login", json={"login": "good-token", "password": "whatever"})
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert (user["login"], user["full_name"], user["external_id"]) == (
        "idp-idp_alice",
        "Alice Idp",
        "4242",
    )


#: The real refusal of a login whose password is missing or blank, CIdP or not
#: [O js-sdk-releases#69: POST /login with {login: <jwt>} and CIdP on].
PASSWORD_BLANK = {"errors": {"password": ["cannot be blank"]}}


@pytest.mark.parametrize("password", [None, "", "   "])
@pytest.mark.parametrize("route", ["/session", "/login"])
def test_cidp_login_without_a_password_is_refused_before_the_verifier(
    api: Api, cidp_url: str, route: str, password: str | None
) -> None:
    api.emulator.configure(cidp_url=cidp_url)
    credentials: dict[str, Any] = {"login": "good-token"}
    if password is not None:
        credentials["password"] = password
    if route == "/login":
        api.app_session()
        response = api.post("/login", json=credentials)
    else:
        response = api.post("/session", json=api.session_body(user=credentials))
    assert response.status_code == 422
    assert response.json() == PASSWORD_BLANK
    assert _Verifier.calls == []
    assert api.emulator.users == []


def _refusal(status: int, body: str) -> str:
    said = json.dumps(body)
    return f"Bad Authentication data. Unauthorized on remote side. Status: {status}.Response {said}"


@pytest.mark.parametrize(("style", "status"), [(None, 200), ("200-errors", 200), ("422", 422)])
def test_cidp_refused_token_has_the_real_shapes(
    api: Api, cidp_url: str, style: str | None, status: int
) -> None:
    if style is not None:
        api.emulator.configure(cidp_failure_style=style)
    api.emulator.configure(cidp_url=cidp_url)
    body = api.session_body(user={"login": "bad-token", "password": "random"})
    response = api.post("/session", json=body)
    assert response.status_code == status
    assert response.json() == {"errors": [_refusal(422, '{"error": "invalid token"}')]}
    assert api.emulator.users == []


def test_cidp_failure_style_is_checked(api: Api) -> None:
    with pytest.raises(Exception, match="cidp_failure_style"):
        api.emulator.configure(cidp_failure_style="401")


def test_cidp_answer_without_uid_is_422_uid_required(api: Api, cidp_url: str) -> None:
    _Verifier.tokens["no-uid"] = {"user": {"id": 5}}
    for style in ("200-errors", "422"):
        api.emulator.configure(cidp_url=cidp_url, cidp_failure_style=style)
        body = api.session_body(user={"login": "no-uid", "password": "random"})
        response = api.post("/session", json=body)
        assert response.status_code == 422
        assert response.json() == {"errors": {"base": ["Custom Identity Provider uid is required"]}}


def test_cidp_unreachable(api: Api) -> None:
    api.emulator.configure(cidp_url="http://127.0.0.1:9/verify", cidp_failure_style="422")
    body = api.session_body(user={"login": "tok", "password": "random"})
    response = api.post("/session", json=body)
    assert response.status_code == 422
    assert "unreachable" in response.json()["errors"][0]


def test_login_without_password_and_without_cidp_is_422(api: Api) -> None:
    response = api.post("/session", json=api.session_body(user={"login": "nopass"}))
    assert response.status_code == 422
    assert response.json() == PASSWORD_BLANK


# -- Firebase -----------------------------------------------------------------------------------


def _firebase_body(api: Api, token: str, provider: str = "firebase_phone") -> dict[str, Any]:
    return api.session_body(
        provider=provider, **{provider: {"project_id": "proj-1", "access_token": token}}
    )


def test_firebase_phone_login_creates_then_finds_user(api: Api) -> None:
    token = mint_firebase_token(
        api.emulator.firebase_key, "proj-1", phone_number="+15550001", uid="fb-1"
    )
    first = api.post("/session", json=_firebase_body(api, token))
    assert first.status_code == 201, first.text
    user = first.json()["session"]["user"]
    assert user["phone"] == "+15550001"
    again = api.post("/session", json=_firebase_body(api, token))
    assert again.json()["session"]["user_id"] == user["id"]


def test_firebase_user_is_found_by_uid_not_by_an_edited_phone(api: Api) -> None:
    key = api.emulator.firebase_key
    mine = mint_firebase_token(key, "proj-1", phone_number="+15550001", uid="fb-1")
    first = api.post("/session", json=_firebase_body(api, mine)).json()["session"]
    edited = api.put(
        f"/users/{first['user_id']}",
        json={"user": {"phone": "+15550002"}},
        token=first["token"],
    )
    assert edited.status_code == 200, edited.text
    theirs = mint_firebase_token(key, "proj-1", phone_number="+15550002", uid="fb-2")
    other = api.post("/session", json=_firebase_body(api, theirs)).json()["session"]
    assert other["user_id"] != first["user_id"]
    again = api.post("/session", json=_firebase_body(api, mine)).json()["session"]
    assert again["user_id"] == first["user_id"]


def test_firebase_email_login_via_post_login(api: Api) -> None:
    token = mint_firebase_token(api.emulator.firebase_key, "proj-1", email="fb@example.com")
    api.app_session()
    response = api.post(
        "/login",
        json={
            "provider": "firebase_email",
            "firebase_email": {"project_id": "proj-1", "access_token": token},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == "fb@example.com"


@pytest.mark.parametrize(
    ("key", "project", "expires_in", "claims", "message"),
    [
        ("other-key", "proj-1", 3600, {}, "Invalid Firebase access token"),
        (None, "proj-2", 3600, {}, "Firebase token was issued for another project"),
        (
            None,
            "proj-1",
            3600,
            {"iss": "https://securetoken.google.com/proj-2"},
            "Firebase token was issued for another project",
        ),
        (None, "proj-1", -10, {}, "Firebase access token has expired"),
        (None, "proj-1", 3600, {"phone_number": None}, "Firebase token has no phone_number"),
    ],
)
def test_firebase_bad_tokens(
    api: Api,
    key: str | None,
    project: str,
    expires_in: int,
    claims: dict[str, Any],
    message: str,
) -> None:
    token = mint_firebase_token(
        key or api.emulator.firebase_key,
        project,
        phone_number="+1",
        expires_in=expires_in,
        claims=claims,
    )
    response = api.post("/session", json=_firebase_body(api, token))
    assert (response.status_code, response.json()) == (401, {"errors": [message]})


def test_firebase_token_expires_on_the_emulator_clock(api: Api) -> None:
    token = mint_firebase_token(api.emulator.firebase_key, "proj-1", phone_number="+1")
    api.emulator.advance_clock(3601)
    assert api.post("/session", json=_firebase_body(api, token)).status_code == 401


def test_firebase_verifier_is_pluggable(connectycube_emulator_server: Any) -> None:
    from django_connectycube.emulator import EmulatorServer, FirebaseIdentity

    def verifier(provider: str, project_id: str, token: str, now: datetime) -> FirebaseIdentity:
        return FirebaseIdentity(uid=f"uid-{token}", phone_number=f"+{len(token)}")

    with EmulatorServer(firebase_verifier=verifier) as server:
        api = Api(server.emulator)
        response = api.post("/session", json=_firebase_body(api, "abc"))
        assert response.json()["session"]["user"]["phone"] == "+3"


def test_unsupported_provider(api: Api) -> None:
    response = api.post("/session", json=api.session_body(provider="facebook", keys={"token": "t"}))
    assert response.status_code == 422
    assert "provider" in response.json()["errors"]
