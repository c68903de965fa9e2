"""The transport's retry decisions, driven by ``responses`` for exact control of each attempt."""

from __future__ import annotations

import pytest
import requests
import responses
from cube_doubles import (
    API,
    USER,
    make_transport,
    refused,
)

from django_connectycube.client import (
    NotFound,
    RateLimited,
    RetryBudget,
    RetryPolicy,
    ServerError,
    TransportError,
)
from django_connectycube.client.transport import provably_unprocessed

# ---- transport retry decisions ---------------------------------------------------------------


def test_backoff_is_full_jitter_and_capped():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=4.0)
    for n in range(6):
        for _ in range(50):
            assert 0 <= policy.backoff(n) <= min(4.0, 2**n)


def test_provably_unprocessed():
    assert provably_unprocessed(refused())
    assert provably_unprocessed(requests.ConnectTimeout("x"))
    assert not provably_unprocessed(requests.ReadTimeout("x"))
    assert not provably_unprocessed(requests.ConnectionError("Connection aborted."))


@responses.activate
def test_get_503_then_success_is_retried():
    responses.get(f"{API}/users/1", status=503, json={"errors": ["busy"]})
    responses.get(f"{API}/users/1", json={"user": USER})
    transport, sleeps = make_transport()
    assert transport.request("GET", "users/1").json() == {"user": USER}
    assert len(responses.calls) == 2
    assert len(sleeps) == 1


@responses.activate
def test_timed_out_post_users_is_not_resent():
    responses.post(f"{API}/users", body=requests.ReadTimeout("read timed out"))
    transport, sleeps = make_transport()
    with pytest.raises(TransportError) as info:
        transport.request("POST", "users", json={"user": {"login": "bob"}})
    assert isinstance(info.value, requests.ReadTimeout)
    assert info.value.maybe_processed
    assert "not repeated" in str(info.value)
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_refused_post_is_resent():
    responses.post(f"{API}/users", body=refused())
    responses.post(f"{API}/users", status=201, json={"user": USER})
    transport, _ = make_transport()
    assert transport.request("POST", "users", json={}).status_code == 201
    assert len(responses.calls) == 2


@responses.activate
def test_get_read_timeout_is_retried():
    responses.get(f"{API}/users/1", body=requests.ReadTimeout("slow"))
    responses.get(f"{API}/users/1", json={"user": USER})
    transport, _ = make_transport()
    assert transport.request("GET", "users/1").status_code == 200
    assert len(responses.calls) == 2


@responses.activate
def test_post_500_is_not_retried_but_503_is():
    responses.post(f"{API}/blobs", status=500, json={"errors": ["boom"]})
    transport, _ = make_transport()
    with pytest.raises(ServerError, match="boom"):
        transport.request("POST", "blobs", json={})
    assert len(responses.calls) == 1
    responses.reset()
    responses.post(f"{API}/blobs", status=503, json={"errors": ["down"]})
    responses.post(f"{API}/blobs", status=201, json={})
    assert transport.request("POST", "blobs", json={}).status_code == 201


@responses.activate
def test_429_retry_after_is_waited():
    responses.get(
        f"{API}/users/1", status=429, json={"errors": ["slow down"]}, headers={"Retry-After": "2"}
    )
    responses.get(f"{API}/users/1", json={"user": USER})
    transport, sleeps = make_transport()
    transport.request("GET", "users/1")
    assert sleeps == [2.0]


@responses.activate
def test_429_retry_after_above_cap_raises_at_once():
    responses.get(
        f"{API}/users/1", status=429, json={"errors": ["slow down"]}, headers={"Retry-After": "120"}
    )
    transport, sleeps = make_transport()
    with pytest.raises(RateLimited) as info:
        transport.request("GET", "users/1")
    assert info.value.retry_after == 120.0
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_retries_stop_after_the_limit():
    responses.get(f"{API}/users/1", status=503, json={"errors": ["down"]})
    transport, sleeps = make_transport(policy=RetryPolicy(retries=2))
    with pytest.raises(ServerError):
        transport.request("GET", "users/1")
    assert len(responses.calls) == 3
    assert len(sleeps) == 2


@responses.activate
def test_retry_budget_caps_retries():
    responses.get(f"{API}/users/1", status=503, json={"errors": ["down"]})
    transport, _ = make_transport(budget=RetryBudget(capacity=1.0, ratio=0.0))
    with pytest.raises(ServerError):
        transport.request("GET", "users/1")
    assert len(responses.calls) == 2  # one retry, then the budget is spent
    with pytest.raises(ServerError):
        transport.request("GET", "users/1")
    assert len(responses.calls) == 3  # no retry at all


@responses.activate
def test_non_json_error_body():
    responses.get(f"{API}/users/1", status=404, body="<html>nope</html>")
    transport, _ = make_transport()
    with pytest.raises(NotFound, match="nope"):
        transport.request("GET", "users/1")
