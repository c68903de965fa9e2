"""Emulator: the HMAC signature of ``POST /session``, its nonce and timestamp."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest

from django_connectycube.client.signing import sign, signed_session_params
from django_connectycube.emulator import Emulator
from django_connectycube.emulator.signature import signature_matches
from tests.emulator.support import Api


@pytest.fixture
def api(connectycube_emulator: Emulator) -> Api:
    return Api(connectycube_emulator)


# -- signature vectors (shared/connectycube-api.md) ---------------------------------------------

VECTOR_BASE = {
    "application_id": 1,
    "auth_key": "29WfrNWdvkhmX6V",
    "nonce": 1234,
    "timestamp": 1544010993,
}


def test_signature_vector_application_session() -> None:
    assert sign(VECTOR_BASE, "secretSECRET") == "aa82897a75383f2f2aaf2d5fba297626224d8a27"


def test_signature_vector_user_session() -> None:
    params = {**VECTOR_BASE, "user": {"login": "john", "password": "11111111"}}
    assert sign(params, "secretSECRET") == "3485c397bd658c268217d34299b81ec6c92e1395"


@pytest.mark.parametrize(
    ("received", "signature"),
    [
        (VECTOR_BASE, "aa82897a75383f2f2aaf2d5fba297626224d8a27"),
        (
            {**VECTOR_BASE, "user": {"login": "john", "password": "11111111"}},
            "3485c397bd658c268217d34299b81ec6c92e1395",
        ),
        (  # the same, as a form body parses: every value a string
            {
                **{key: str(value) for key, value in VECTOR_BASE.items()},
                "user": {"login": "john", "password": "11111111"},
            },
            "3485c397bd658c268217d34299b81ec6c92e1395",
        ),
    ],
)
def test_the_emulator_verifies_the_vectors_from_what_it_received(
    received: dict[str, Any], signature: str
) -> None:
    assert signature_matches({**received, "signature": signature.upper()}, "secretSECRET")
    assert not signature_matches({**received, "signature": signature}, "another-secret")
    assert not signature_matches(
        {**received, "nonce": 4321, "signature": signature}, "secretSECRET"
    )


def test_a_signature_that_is_no_hex_is_unexpected_not_a_500(api: Api) -> None:
    body = signed_session_params(1, api.emulator.auth_key, api.emulator.auth_secret)
    for wrong in ("\u00e9" * 40, 12345, ["a"]):
        response = api.post("/session", json={**body, "signature": wrong})
        assert (response.status_code, response.json()) == (
            422,
            {"errors": ["Unexpected signature"]},
        ), wrong


@pytest.fixture
def vector_emulator(connectycube_emulator: Emulator) -> Emulator:
    """The emulator configured like the spec's vectors, with its clock at the vectors' time."""
    connectycube_emulator.configure(auth_key="29WfrNWdvkhmX6V", auth_secret="secretSECRET")
    now = datetime.now(timezone.utc).timestamp()
    connectycube_emulator.advance_clock(1544010993 - now)
    return connectycube_emulator


def test_emulator_accepts_the_spec_vectors_exactly(vector_emulator: Emulator) -> None:
    api = Api(vector_emulator)
    body = {**VECTOR_BASE, "signature": "aa82897a75383f2f2aaf2d5fba297626224d8a27"}
    assert api.post("/session", json=body).status_code == 201
    body = {
        **VECTOR_BASE,
        "nonce": 1234,
        "user": {"login": "john", "password": "11111111"},
        "signature": "3485c397bd658c268217d34299b81ec6c92e1395",
    }
    # Same nonce+timestamp as the first vector: a replay, refused even with a valid signature.
    response = api.post("/session", json=body)
    assert response.status_code == 422
    assert "nonce" in response.json()["errors"]


def test_vector_user_session_as_form_body(vector_emulator: Emulator) -> None:
    api = Api(vector_emulator)
    form = {
        "application_id": "1",
        "auth_key": "29WfrNWdvkhmX6V",
        "nonce": "1234",
        "timestamp": "1544010993",
        "user[login]": "john",
        "user[password]": "11111111",
        "signature": "3485c397bd658c268217d34299b81ec6c92e1395",
    }
    response = api.post("/session", data=form)
    assert response.status_code == 201, response.text
    assert response.json()["session"]["user"]["login"] == "john"


def test_wrong_signature_is_422_unexpected_signature(api: Api) -> None:
    body = signed_session_params(1, api.emulator.auth_key, "not-the-secret")
    response = api.post("/session", json=body)
    assert response.status_code == 422
    assert response.json() == {"errors": ["Unexpected signature"]}


def test_signed_session_with_our_client_helper(api: Api) -> None:
    body = signed_session_params(
        1,
        api.emulator.auth_key,
        api.emulator.auth_secret,
        {"user": {"login": "amy", "password": "pw1"}},
    )
    response = api.post("/session", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["session"]["nonce"] == body["nonce"]


@pytest.mark.parametrize("as_form", [False, True])
def test_session_nonce_and_ts_are_integers(api: Api, as_form: bool) -> None:
    """Clients send them as strings (Flutter, forms); the session body has integers [O]."""
    signed = signed_session_params(1, api.emulator.auth_key, api.emulator.auth_secret, nonce=55)
    sent = {key: str(value) for key, value in signed.items()}
    response = api.post("/session", **({"data": sent} if as_form else {"json": sent}))
    assert response.status_code == 201, response.text
    session = response.json()["session"]
    assert (session["nonce"], session["ts"]) == (55, signed["timestamp"])
    assert type(session["nonce"]) is int and type(session["ts"]) is int


def test_unsigned_session_gets_integer_nonce_and_ts_too(api: Api) -> None:
    """JS SDK 4+ sends neither; the body still has both, as integers [I]."""
    before = int(api.emulator.now().timestamp())
    session = api.post("/session", json=api.session_body()).json()["session"]
    assert isinstance(session["nonce"], int) and isinstance(session["ts"], int)
    assert before - 1 <= session["ts"] <= before + 5
    again = api.get("/session", token=session["token"]).json()["session"]
    assert (again["nonce"], again["ts"]) == (session["nonce"], session["ts"])
    bad = api.post("/session", json=api.session_body(nonce="abc"))
    assert (bad.status_code, bad.json()) == (422, {"errors": {"nonce": ["must be an integer"]}})


def test_require_signature_refuses_unsigned_sessions(api: Api) -> None:
    api.emulator.configure(require_signature=True)
    response = api.post("/session", json=api.session_body())
    assert response.status_code == 422
    assert response.json() == {"errors": ["Unexpected signature"]}
    signed = signed_session_params(1, api.emulator.auth_key, api.emulator.auth_secret)
    assert api.post("/session", json=signed).status_code == 201


def test_nonce_and_timestamp_pair_is_single_use(api: Api) -> None:
    signed = signed_session_params(1, api.emulator.auth_key, api.emulator.auth_secret, nonce=77)
    assert api.post("/session", json=signed).status_code == 201
    replay = api.post("/session", json=signed)
    assert replay.status_code == 422
    assert replay.json() == {"errors": {"nonce": ["has already been used with this timestamp"]}}
    # Same nonce, another timestamp: a different pair, accepted.
    other = signed_session_params(
        1,
        api.emulator.auth_key,
        api.emulator.auth_secret,
        nonce=77,
        timestamp=signed["timestamp"] + 1,
    )
    assert api.post("/session", json=other).status_code == 201


def test_signature_timestamp_must_be_within_an_hour(api: Api) -> None:
    stale = signed_session_params(
        1, api.emulator.auth_key, api.emulator.auth_secret, timestamp=int(time.time()) - 3700
    )
    response = api.post("/session", json=stale)
    assert (response.status_code, response.json()) == (
        422,
        {"errors": {"timestamp": ["invalid timestamp"]}},
    )
