"""Doubles the client's unit tests share: a fake ConnectyCube's answers and clients that never
sleep. Nothing here imports Django: these tests also run with Django hidden
(``tests/project/test_client_without_django.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from django_connectycube.client import ConnectyCubeClient, MemoryAppSessionStore, RetryPolicy
from django_connectycube.client.transport import Transport

API = "https://cc.test"
SECRET = "unit-auth-secret-XYZ"
AUTH_KEY = "unit-auth-key-ABC"


def refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.ConnectionError(MaxRetryError(None, "/users", reason=reason))


def v2_page(*users: dict) -> dict:
    return {"limit": 1, "skip": 0, "total_entries": len(users), "items": list(users)}


def expiry_headers(seconds: int = 7200) -> dict[str, str]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return {
        "CB-Token-ExpirationDate": (now + timedelta(seconds=seconds)).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        ),
        "Date": format_datetime(now, usegmt=True),
    }


def session_body(token: str, user: dict | None = None) -> dict:
    session = {
        "id": 1,
        "application_id": 1,
        "user_id": user["id"] if user else None,
        "token": token,
        "nonce": 1,
        "ts": 1,
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    }
    if user:
        session["user"] = user
    return {"session": session}


USER = {
    "id": 7,
    "login": "bob",
    "email": "bob@example.com",
    "custom_data": '{"a": 1}',
    "user_tags": "x, y",
    "external_id": "42",
    "created_at": "2018-12-05T11:58:02Z",
}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_transport(**kwargs) -> tuple[Transport, Sleeps]:
    sleeps = Sleeps()
    kwargs.setdefault("policy", RetryPolicy(retries=3, max_retry_wait=10.0))
    return Transport(API, sleep=sleeps, **kwargs), sleeps


def make_client(**kwargs) -> tuple[ConnectyCubeClient, Sleeps]:
    sleeps = Sleeps()
    kwargs.setdefault("app_session_store", MemoryAppSessionStore())
    client = ConnectyCubeClient(API, 1, AUTH_KEY, SECRET, sleep=sleeps, **kwargs)
    return client, sleeps
