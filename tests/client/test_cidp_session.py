"""The client's Custom Identity Provider login over ``responses``: what it sends, and how each
refusal the real service has been seen to give becomes a typed error keeping its words."""

from __future__ import annotations

import json

import pytest
import responses
from cube_doubles import API, SECRET, USER, expiry_headers, make_client, session_body, v2_page

from django_connectycube.client import APIError, IdentityProviderRefused, ValidationError
from django_connectycube.client.errors import MalformedResponse
from django_connectycube.client.redaction import REDACTED, redact
from django_connectycube.client.signing import sign

#: What the real service answered with 200 when the verifier refused [O web-samples#77].
BAD_AUTH_200 = (
    "Bad Authentication data. Unauthorized on remote side. Status: 401."
    'Response "{\\"error\\": \\"invalid or expired token\\"}"'
)
#: What it answered with 422 when the mapped answer had no uid [O web-samples#128].
UID_REQUIRED = {"base": ["Custom Identity Provider uid is required"]}


@responses.activate
def test_every_cidp_login_sends_a_fresh_random_password_kept_out_of_logs():
    responses.post(f"{API}/session", status=201, json=session_body("t-1", USER))
    client, _ = make_client()
    client.create_cidp_session("external-token-1")
    client.create_cidp_session("external-token-2")
    bodies = [json.loads(call.request.body) for call in responses.calls]
    passwords = [body["user"]["password"] for body in bodies]
    assert [body["user"]["login"] for body in bodies] == ["external-token-1", "external-token-2"]
    assert all(isinstance(p, str) and len(p) >= 16 and p.strip() for p in passwords)
    assert passwords[0] != passwords[1]
    for body, password in zip(bodies, passwords, strict=True):
        assert body["signature"] == sign(body, SECRET)  # signed with the password in it
        assert redact(f"the value {password} leaked") == f"the value {REDACTED} leaked"


@responses.activate
def test_a_200_refusal_is_a_typed_error_with_the_server_message():
    responses.post(f"{API}/session", status=200, json={"errors": [BAD_AUTH_200]})
    client, _ = make_client()
    with pytest.raises(IdentityProviderRefused) as caught:
        client.create_cidp_session("external-token")
    error = caught.value
    assert not isinstance(error, MalformedResponse)
    assert error.status == 200
    assert error.messages == [BAD_AUTH_200]
    assert "Bad Authentication data" in str(error) and "POST /session" in str(error)


@responses.activate
def test_a_422_refusal_is_a_typed_validation_error_with_the_server_message():
    responses.post(f"{API}/session", status=422, json={"errors": UID_REQUIRED})
    client, _ = make_client()
    with pytest.raises(IdentityProviderRefused) as caught:
        client.create_cidp_session("external-token")
    assert isinstance(caught.value, ValidationError)
    assert caught.value.status == 422
    assert caught.value.messages == ["Custom Identity Provider uid is required"]
    assert len(responses.calls) == 1  # a refusal is not retried


@responses.activate
def test_a_cidp_login_refused_for_a_blank_password_keeps_the_field_error():
    responses.post(f"{API}/session", status=422, json={"errors": {"password": ["cannot be blank"]}})
    client, _ = make_client()
    with pytest.raises(IdentityProviderRefused) as caught:
        client.create_cidp_session("external-token")
    assert caught.value.field_errors == {"password": ["cannot be blank"]}


@responses.activate
def test_any_2xx_answer_with_errors_is_an_api_error_not_a_malformed_one():
    responses.post(f"{API}/session", status=201, json=session_body("app", None), headers={})
    responses.get(f"{API}/users/v2", json={"errors": ["Something refused"]}, headers={})
    client, _ = make_client()
    with pytest.raises(APIError) as caught:
        client.get_user(7)
    assert not isinstance(caught.value, MalformedResponse)
    assert caught.value.messages == ["Something refused"]
    assert "Something refused" in str(caught.value)


@responses.activate
def test_a_2xx_body_without_errors_still_reads_normally():
    responses.post(f"{API}/session", status=201, json=session_body("app"), headers=expiry_headers())
    responses.get(f"{API}/users/v2", json=v2_page(USER), headers=expiry_headers())
    client, _ = make_client()
    assert client.get_user(7).login == "bob"
