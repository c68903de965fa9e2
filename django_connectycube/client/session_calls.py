"""Session calls of ``ConnectyCubeClient``: create, inspect and end sessions.

``POST /session`` is signed with the application's secret and a timestamp the server checks
against its own clock; when the two clocks disagree the client learns the server's (its ``Date``
header) and signs on it. Every expiry the server states is moved onto the local clock the same
way, so a machine whose clock is off neither renews too late nor too often.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import requests

from .dates import parse_expiration_header, response_date
from .errors import APIError, IdentityProviderRefused, ValidationError
from .redaction import log, register_secret
from .scopes import json_body
from .signing import signed_session_params
from .transport import Transport
from .types import Session

if TYPE_CHECKING:
    from .user_client import UserClient

__all__ = ["SessionCalls"]

logger = logging.getLogger("django_connectycube")


def _server_clock_offset(response: requests.Response | None) -> float | None:
    """Seconds the server's clock (its ``Date`` header) is ahead of ours, if it says."""
    server_now = response_date(response)
    return None if server_now is None else server_now.timestamp() - time.time()


class SessionCalls:
    """Mixin of ``ConnectyCubeClient``: the session calls."""

    application_id: int | str
    transport: Transport
    _auth_key: str
    _auth_secret: str
    _clock: Callable[[], float]
    _clock_offset: float

    def as_user(self, session: Session | str, *, user_id: int | None = None) -> UserClient:
        raise NotImplementedError

    def _expiry_from(self, response: requests.Response) -> float | None:
        """The token's expiry on this machine's clock, corrected by the server's ``Date``."""
        expires = parse_expiration_header(response.headers.get("CB-Token-ExpirationDate"))
        if expires is None:
            return None
        server_now = response_date(response)
        if server_now is not None:
            return self._clock() + (expires - server_now).total_seconds()
        return expires.timestamp()

    def _learn_server_clock(self, response: requests.Response | None) -> bool:
        """Adopt the server's clock for signing when it is more than a minute from ours."""
        offset = _server_clock_offset(response)
        if offset is None or abs(offset - self._clock_offset) <= 60:
            return False
        log(
            logger,
            logging.WARNING,
            "The server's clock is %.0f s ahead of ours; signing on its clock",
            offset,
        )
        self._clock_offset = offset
        return True

    def _create_session(self, extra: Mapping[str, Any] | None = None) -> Session:
        """``POST /session``, signed; a clock the server disagrees with is worked around.

        The signed ``timestamp`` must be within 60 minutes of the server's clock. If the server
        says it is not, re-sign on the server's clock (its ``Date`` header) and, failing that,
        send the request unsigned, which current servers accept.
        """

        def signed() -> dict[str, Any]:
            # Signed afresh per attempt: a nonce is single-use, so a retry needs a new one.
            return signed_session_params(
                self.application_id,
                self._auth_key,
                self._auth_secret,
                extra or None,
                timestamp=int(time.time() + self._clock_offset),
            )

        def unsigned() -> dict[str, Any]:
            return {"application_id": self.application_id, "auth_key": self._auth_key, **extra_}

        extra_ = dict(extra or {})
        response: requests.Response | None
        try:
            response = self.transport.request("POST", "session", json=signed, safe=True)
        except ValidationError as exc:
            if "timestamp" not in exc.field_errors:
                raise
            response = None
            if self._learn_server_clock(exc.response):
                try:
                    response = self.transport.request("POST", "session", json=signed, safe=True)
                except ValidationError as again:
                    if "timestamp" not in again.field_errors:
                        raise
            if response is None:
                log(
                    logger,
                    logging.WARNING,
                    "Server rejected our signing timestamp; creating session unsigned",
                )
                response = self.transport.request("POST", "session", json=unsigned, safe=True)
        session = self._session_from(response, "POST", "/session")
        register_secret(session.token)
        return session

    def _session_from(self, response: requests.Response, method: str, path: str) -> Session:
        expires = self._expiry_from(response)
        expires_at = datetime.fromtimestamp(expires, tz=timezone.utc) if expires else None
        return Session.from_api(json_body(response, method, path), expires_at=expires_at)

    def create_app_session(self) -> Session:
        """A new application session of its own (not the shared one the client uses)."""
        return self._create_session()

    def create_user_session(
        self, *, login: str | None = None, email: str | None = None, password: str
    ) -> Session:
        """Log a user in with login or email and password; returns a user session."""
        if bool(login) == bool(email):
            raise ValueError("Pass exactly one of login= or email=.")
        user: dict[str, str | None] = {"login": login} if login else {"email": email}
        user["password"] = password
        return self._create_session({"user": user})

    def create_firebase_phone_session(self, project_id: str, access_token: str) -> Session:
        """Log a user in with a Firebase phone-auth ID token."""
        register_secret(access_token)
        extra = {
            "provider": "firebase_phone",
            "firebase_phone": {"project_id": project_id, "access_token": access_token},
        }
        return self._create_session(extra)

    def create_cidp_session(self, external_token: str) -> Session:
        """Log a user in through the Custom Identity Provider with a token our backend issued.

        The real service refuses a login without a password (422 ``cannot be blank``) even when
        the verifier decides, so a throwaway random one goes along: it is never stored, and the
        user ConnectyCube creates has none. Any refusal is :class:`IdentityProviderRefused`.
        """
        register_secret(external_token)
        password = secrets.token_urlsafe(24)
        register_secret(password)
        try:
            return self._create_session({"user": {"login": external_token, "password": password}})
        except APIError as exc:
            status = exc.status or 0
            if exc.errors is None or not (200 <= status < 300 or status == 422):
                raise
            raise IdentityProviderRefused(
                exc.message,
                status=exc.status,
                errors=exc.errors,
                response=exc.response,
                method=exc.method,
                path=exc.path,
            ) from exc

    def get_session(self, token: str) -> Session:
        """The session behind a token (``SessionExpired`` if it is gone)."""
        return self.as_user(token).get_session()

    def destroy_session(self, token: str) -> None:
        """End a session for good (``DELETE /session``)."""
        self.as_user(token).destroy_session()
