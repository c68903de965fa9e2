"""The client's pure parts: the error tree, redaction, the date parsers, the typed results."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from cube_doubles import (
    API,
    USER,
    session_body,
)

from django_connectycube.client import (
    APIError,
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    ConnectyCubeClient,
    ConnectyCubeError,
    NotFound,
    Page,
    PermissionDenied,
    RateLimited,
    ServerError,
    Session,
    SessionExpired,
    StoredAppSession,
    TransportError,
    User,
    ValidationError,
    iterate_pages,
    parse_retry_after,
    redact,
    register_secret,
)
from django_connectycube.client.dates import parse_http_date, response_date
from django_connectycube.client.errors import error_for_status, transport_error
from django_connectycube.client.types import parse_expiration_header

# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (422, ValidationError),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (409, APIError),
    ],
)
def test_error_class_per_status(status, cls):
    error = error_for_status(status, ["Something broke"], method="GET", path="/users/1")
    assert type(error) is cls
    assert isinstance(error, ConnectyCubeError)
    assert error.status == status
    assert "Something broke" in str(error)
    assert "GET /users/1" in str(error)


def test_session_expired_is_an_authentication_error():
    error = error_for_status(401, {"base": ["Required session does not exist"]})
    assert isinstance(error, SessionExpired)
    assert isinstance(error, AuthenticationError)
    assert error.messages == ["Required session does not exist"]
    wrong_password = error_for_status(401, ["Invalid password"])
    assert type(wrong_password) is AuthenticationError


def test_validation_error_keeps_field_errors():
    error = error_for_status(422, {"login": ["has already been taken."]})
    assert isinstance(error, ValidationError)
    assert error.field_errors == {"login": ["has already been taken."]}
    assert "login has already been taken." in str(error)


def test_rate_limited_carries_retry_after():
    error = error_for_status(429, ["Too many"], retry_after=3.0)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0


def test_transport_error_is_also_the_requests_exception():
    error = transport_error(requests.ReadTimeout("read timed out"), method="POST", path="/users")
    assert isinstance(error, TransportError)
    assert isinstance(error, requests.ReadTimeout)
    assert isinstance(error, requests.RequestException)
    assert isinstance(error, ConnectyCubeError)
    assert "POST /users" in str(error)


def test_errors_pickle_without_the_response():
    error = error_for_status(422, {"login": ["taken"]}, method="POST", path="/users")
    error.response = requests.Response()
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301
    assert type(clone) is ValidationError
    assert clone.field_errors == {"login": ["taken"]}
    assert clone.response is None
    tclone = pickle.loads(  # noqa: S301
        pickle.dumps(transport_error(requests.ConnectTimeout("x")))
    )
    assert isinstance(tclone, TransportError)


def test_configuration_error_is_a_plain_value_error_outside_the_tree():
    assert issubclass(ConfigurationError, ValueError)
    assert not issubclass(ConfigurationError, ConnectyCubeError)
    with pytest.raises(ConfigurationError, match="auth_secret"):
        ConnectyCubeClient(API, 1, "key", "")
    with pytest.raises(ConfigurationError, match="api_url"):
        ConnectyCubeClient("ftp://x", 1, "key", "secret")


def test_error_messages_are_redacted():
    register_secret("tok-0123456789abcdef")
    error = error_for_status(401, ["token tok-0123456789abcdef is unknown"])
    assert "tok-0123456789abcdef" not in str(error)
    assert "[redacted]" in str(error)


# ---- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "CB-Token: s3cr3tvalue",
        "GET /blobs/abc?token=s3cr3tvalue",
        "user[password]=s3cr3tvalue&user[login]=bob",
        '{"password": "s3cr3tvalue"}',
        "{'auth_key': 's3cr3tvalue'}",
        "signature=s3cr3tvalue",
        "auth_secret: s3cr3tvalue",
    ],
)
def test_redact_named_secrets(text):
    assert "s3cr3tvalue" not in redact(text)


def test_redact_registered_values_anywhere():
    register_secret("a-very-known-secret")
    assert redact("x a-very-known-secret y") == "x [redacted] y"
    assert redact("login=bob") == "login=bob"


# ---- Retry-After, expiry header, types, pages ------------------------------------------------


def test_parse_retry_after_seconds_and_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    http_date = format_datetime(now + timedelta(seconds=20), usegmt=True)
    assert parse_retry_after(http_date, now=now.timestamp()) == pytest.approx(20)
    past = format_datetime(now - timedelta(seconds=20), usegmt=True)
    assert parse_retry_after(past, now=now.timestamp()) == 0.0


def test_parse_http_date_takes_every_http_form_and_refuses_garbage():
    expected = datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc)
    for text in (
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime, no zone: UTC
    ):
        assert parse_http_date(text) == expected, text
    for garbage in (None, "", "  ", "soon", "Sun, 99 Nov 1994 08:49:37 GMT"):
        assert parse_http_date(garbage) is None


def test_response_date_reads_the_date_header():
    response = requests.Response()
    assert response_date(None) is None
    assert response_date(response) is None
    response.headers["Date"] = "Sun, 06 Nov 1994 08:49:37 GMT"
    assert response_date(response) == datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc)


def test_parse_expiration_header():
    parsed = parse_expiration_header("2018-12-05 13:58:02 UTC")
    assert parsed == datetime(2018, 12, 5, 13, 58, 2, tzinfo=timezone.utc)
    assert parse_expiration_header(None) is None
    assert parse_expiration_header("2018-12-05T13:58:02Z") == parsed
    assert parse_expiration_header("2018-12-5 13:58:02 UTC") == parsed  # unpadded, still read
    assert parse_expiration_header("in two hours") is None


def test_user_from_api():
    user = User.from_api({"user": USER})
    assert user.id == 7
    assert user.login == "bob"
    assert user.tags == ["x", "y"]
    assert user.custom_data_json == {"a": 1}
    assert user.created_at == datetime(2018, 12, 5, 11, 58, 2, tzinfo=timezone.utc)
    assert user.raw["email"] == "bob@example.com"
    assert User.from_api({"id": 1, "custom_data": "not json"}).custom_data_json == {}


def test_session_repr_hides_the_token():
    session = Session.from_api(session_body("tok-hidden-123", USER))
    assert session.token == "tok-hidden-123"
    assert "tok-hidden-123" not in repr(session)
    assert session.is_user_session
    assert session.user is not None
    assert session.user.login == "bob"
    assert "tok-hidden" not in repr(StoredAppSession("tok-hidden-123", 1.0))


def test_page_next_params():
    assert Page(items=[1, 2], total=3, page=1, per_page=2).next_params() == {"page": 2}
    last = Page(items=[1], total=3, page=2, per_page=2)
    assert last.next_params() is None
    v2 = Page.from_v2(
        {"limit": 2, "skip": 0, "total_entries": 3, "items": [USER, USER]}, User.from_api
    )
    assert v2.offset == 0
    assert v2.limit == 2
    assert v2.next_params() == {"offset": 2}
    assert Page(items=[], total=5, page=1, per_page=2).next_params() is None


def test_iterate_pages_walks_every_page():
    data = list(range(7))

    def fetch(page: int = 1, per_page: int = 3) -> Page[int]:
        chunk = data[(page - 1) * per_page : page * per_page]
        return Page(items=chunk, total=len(data), page=page, per_page=per_page)

    assert list(iterate_pages(fetch, per_page=3)) == data

    def fetch_v2(offset: int = 0, limit: int = 3) -> Page[int]:
        return Page(
            items=data[offset : offset + limit], total=len(data), offset=offset, limit=limit
        )

    assert list(iterate_pages(fetch_v2)) == data
