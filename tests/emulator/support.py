"""Helpers shared by the emulator tests (no tests here): a tiny HTTP client over the emulator.

The tests talk to the emulator over real HTTP on purpose: the wire format is the product.
"""

from __future__ import annotations

from typing import Any

import requests

from django_connectycube.emulator import Emulator
from django_connectycube.emulator.control_access import CONTROL_HEADER

_UNSET: Any = object()


class Api:
    """``requests.Session`` bound to one emulator, remembering the last session token."""

    def __init__(self, emulator: Emulator) -> None:
        assert emulator.url, "the emulator must be served"
        self.emulator = emulator
        self.base = emulator.url
        self.http = requests.Session()
        self.token: str | None = None

    def call(
        self,
        method: str,
        path: str,
        *,
        token: Any = _UNSET,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        all_headers = dict(headers or {})
        token = self.token if token is _UNSET else token
        if token:
            all_headers["CB-Token"] = token
        if path.startswith("/_emulator/"):
            all_headers.setdefault(CONTROL_HEADER, "1")
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, self.base + path, headers=all_headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def session_body(self, **extra: Any) -> dict[str, Any]:
        return {
            "application_id": self.emulator.application_id,
            "auth_key": self.emulator.auth_key,
            **extra,
        }

    def app_session(self) -> str:
        response = self.post("/session", json=self.session_body(), token=None)
        assert response.status_code == 201, response.text
        self.token = response.json()["session"]["token"]
        return self.token

    def user_session(self, login: str, password: str = "password1") -> str:  # noqa: S107
        body = self.session_body(user={"login": login, "password": password})
        response = self.post("/session", json=body, token=None)
        assert response.status_code == 201, response.text
        self.token = response.json()["session"]["token"]
        return self.token

    def signup(self, login: str, password: str = "password1", **fields: Any) -> dict[str, Any]:  # noqa: S107
        """Create a user through ``POST /users`` with the auth key (leaves ``token`` alone)."""
        response = self.post(
            "/users",
            json={"user": {"login": login, "password": password, **fields}},
            token=None,
            headers={"CB-AuthKey": self.emulator.auth_key},
        )
        assert response.status_code == 201, response.text
        return response.json()["user"]
