"""``ConnectyCubeClient``: typed calls for sessions, users and blobs.

Two scopes share one pooled transport:

* ``ConnectyCubeClient`` acts with the **application session**: created on first use, shared
  through an :class:`~.stores.AppSessionStore` (a process-local one unless the caller passes a
  shared one), renewed before ``CB-Token-ExpirationDate`` and on a 401 ``Required session does
  not exist``, one renewal at a time (:mod:`.app_session`). It reads users and blobs, signs users
  up, resets passwords, and creates, inspects and ends sessions given their token
  (:mod:`.session_calls`).
* ``client.as_user(token_or_session)`` returns a :class:`~.user_client.UserClient` acting with
  one **user session**: the same reads, plus the writes only a user may do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from .admin_api import AdminApi
from .app_session import SharedAppSession
from .errors import ConfigurationError, SessionExpired
from .redaction import log, register_secret
from .scopes import BaseApi, user_body
from .session_calls import SessionCalls
from .stores import AppSessionStore, MemoryAppSessionStore, store_key
from .transport import DEFAULT_TIMEOUT, RetryBudget, RetryPolicy, Throttle, Transport
from .types import Session, User
from .user_client import UserClient

__all__ = ["DEFAULT_USER_AGENT", "ConnectyCubeClient", "UserClient"]

logger = logging.getLogger("django_connectycube")

#: The ``User-Agent`` of a client whose caller names none.
DEFAULT_USER_AGENT = "django-connectycube"


def _normalize_timeout(value: Any) -> float | tuple[float, float]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigurationError("timeout must be a number or a (connect, read) pair.")
        return (float(value[0]), float(value[1]))
    return float(value)


def _shared_session_attribute(name: str) -> Any:
    """An attribute of the client that lives on its :class:`SharedAppSession` (read and set)."""
    return property(
        lambda client: getattr(client.shared_app_session, name),
        lambda client, value: setattr(client.shared_app_session, name, value),
    )


class ConnectyCubeClient(AdminApi, SessionCalls, BaseApi):
    """A client for one ConnectyCube application.

    Credentials are arguments, so one process may hold clients for several applications.
    Thread-safe: share one instance per application to share its connection pool. Clients that
    should share one application token across processes are given one shared
    ``app_session_store``. ``throttle`` (a
    :class:`~.transport.Throttle`) paces every request against a limit shared with others.
    """

    def __init__(
        self,
        api_url: str,
        application_id: int | str,
        auth_key: str,
        auth_secret: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 3,
        app_session_store: AppSessionStore | None = None,
        max_retry_wait: float = 30.0,
        retry_budget: RetryBudget | None = None,
        renew_margin: float = 60.0,
        pooled: bool = True,
        pool_size: int = 10,
        lock_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        admin_api_key: str | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        throttle: Throttle | None = None,
    ) -> None:
        for name, value in (
            ("api_url", api_url),
            ("application_id", application_id),
            ("auth_key", auth_key),
            ("auth_secret", auth_secret),
        ):
            if value in (None, ""):
                raise ConfigurationError(f"ConnectyCubeClient needs {name}; it is empty.")
        if not str(api_url).startswith(("http://", "https://")):
            raise ConfigurationError(f"api_url must start with http:// or https://: {api_url!r}")
        self._client = self
        self.api_url = str(api_url).rstrip("/")
        self.application_id = application_id
        self._auth_key = auth_key
        self._auth_secret = auth_secret
        register_secret(auth_key)
        register_secret(auth_secret)
        self._admin_api_key = admin_api_key or None
        if admin_api_key:
            register_secret(admin_api_key)
        self._clock = clock
        self._clock_offset = 0.0
        self.transport = Transport(
            self.api_url,
            timeout=_normalize_timeout(timeout),
            policy=RetryPolicy(retries=int(retries), max_retry_wait=float(max_retry_wait)),
            budget=retry_budget,
            user_agent=user_agent,
            pooled=pooled,
            pool_size=pool_size,
            sleep=sleep,
            throttle=throttle,
        )
        #: The application token this client shares with every client on the same store.
        self.shared_app_session = SharedAppSession(
            app_session_store or MemoryAppSessionStore(),
            store_key(self.api_url, application_id, auth_key),
            self.create_app_session,
            clock=clock,
            renew_margin=renew_margin,
            lock_wait=lock_wait,
        )

    def __repr__(self) -> str:
        return f"<ConnectyCubeClient {self.api_url} app={self.application_id}>"

    #: Where the application session is shared, and how it is kept (see :class:`SharedAppSession`).
    store = _shared_session_attribute("store")
    renew_margin = _shared_session_attribute("renew_margin")
    lock_wait = _shared_session_attribute("lock_wait")
    store_refresh_interval = _shared_session_attribute("refresh_interval")

    @property
    def app_session_key(self) -> str:
        """This application's key in :attr:`store` (the auth key hashed, never stored)."""
        return self.shared_app_session.key

    def close(self) -> None:
        """Close the pooled connections (the shared application session stays valid)."""
        self.transport.close()

    def __enter__(self) -> ConnectyCubeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def as_user(self, session: Session | str, *, user_id: int | None = None) -> UserClient:
        """A view acting with one user's session token, sharing this client's connection pool."""
        if isinstance(session, Session):
            return UserClient(self, session.token, user_id=user_id or session.user_id)
        return UserClient(self, session, user_id=user_id)

    def app_token(self) -> str:
        """The shared application session token (created or renewed if needed)."""
        return self.shared_app_session.token()

    # ---- transport with the application session --------------------------------------------

    def _call(self, method: str, path: str, **request: Any) -> requests.Response:
        shared = self.shared_app_session
        token = shared.token()
        try:
            response = self.transport.request(method, path, headers={"CB-Token": token}, **request)
        except SessionExpired as exc:
            # Rejected before processing, so even a POST may be sent again with a new token.
            log(
                logger,
                logging.INFO,
                "Application session expired on %s /%s; renewing",
                method,
                path,
            )
            self._learn_server_clock(exc.response)
            token = shared.token(stale=token)
            response = self.transport.request(method, path, headers={"CB-Token": token}, **request)
        shared.observe(token, self._expiry_from(response))
        return response

    # ---- users: writes allowed with the application session -------------------------------

    def create_user(
        self,
        *,
        login: str | None = None,
        email: str | None = None,
        password: str | None = None,
        full_name: str | None = None,
        phone: str | None = None,
        website: str | None = None,
        tag_list: str | Sequence[str] | None = None,
        custom_data: str | Mapping[str, Any] | None = None,
        external_id: str | int | None = None,
        facebook_id: str | None = None,
        twitter_id: str | None = None,
        timezone: int | None = None,
        avatar: str | None = None,
        **extra: Any,
    ) -> User:
        """Sign a user up (``POST /users``).

        Never repeated after an ambiguous failure (a read timeout raises ``TransportError`` with
        ``maybe_processed=True``): look the user up by ``external_id`` before trying again.
        """
        fields = {
            "login": login,
            "email": email,
            "password": password,
            "full_name": full_name,
            "phone": phone,
            "website": website,
            "tag_list": tag_list,
            "custom_data": custom_data,
            "external_id": None if external_id is None else str(external_id),
            "facebook_id": facebook_id,
            "twitter_id": twitter_id,
            "timezone": timezone,
            "avatar": avatar,
            **extra,
        }
        body = {"user": user_body(fields)}
        return User.from_api(self._json_call("POST", "users", json=body, safe=False))

    def reset_password(self, email: str) -> None:
        """Ask ConnectyCube to email the user a password-reset link."""
        self._call("GET", "users/password/reset", params={"email": email}, safe=False)
