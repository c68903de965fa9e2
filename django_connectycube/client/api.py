"""``ConnectyCubeClient``: typed calls for sessions, users and blobs.

Two scopes share one pooled transport:

* ``ConnectyCubeClient`` acts with the **application session**: created on first use, shared
  through an :class:`~.stores.AppSessionStore` (Django's cache by default, so every process and
  worker uses one token), renewed before ``CB-Token-ExpirationDate`` and on a 401
  ``Required session does not exist``, one renewal at a time. It reads users and blobs, signs
  users up, resets passwords, and creates, inspects and ends sessions given their token.
* ``client.as_user(token_or_session)`` returns a :class:`UserClient` acting with one **user
  session**: the same reads, plus the writes only a user may do (update or delete self, blobs,
  avatar). A 401 there raises :class:`~.errors.AuthenticationError`; renewing user sessions is the
  caller's job (``django_connectycube.sessions``), never this client's.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests

from .. import __version__
from .admin_api import AdminApi
from .blobs import BlobReads
from .errors import APIError, ConfigurationError, SessionExpired, ValidationError
from .redaction import forget_secret, log, redact, register_secret
from .signing import signed_session_params
from .stores import (
    AppSessionStore,
    DjangoCacheAppSessionStore,
    MemoryAppSessionStore,
    StoredAppSession,
    store_key,
)
from .transport import DEFAULT_TIMEOUT, RetryBudget, RetryPolicy, Throttle, Transport
from .types import Blob, Session, User, parse_expiration_header
from .users import UserReads

__all__ = ["ConnectyCubeClient", "UserClient", "default_app_session_store"]

logger = logging.getLogger("django_connectycube")


def _info(message: str, *args: object) -> None:
    log(logger, logging.INFO, message, *args)


def _warn(message: str, *args: object) -> None:
    log(logger, logging.WARNING, message, *args)


#: A session lives this long after its last use when the server does not say otherwise.
DEFAULT_SESSION_TTL = 2 * 60 * 60

#: The user fields ``create_user``/``update_user`` send (anything else goes through ``**extra``).
USER_FIELDS = (
    "login",
    "email",
    "password",
    "old_password",
    "full_name",
    "phone",
    "website",
    "tag_list",
    "custom_data",
    "external_id",
    "external_user_id",
    "facebook_id",
    "twitter_id",
    "timezone",
    "avatar",
)


def default_app_session_store() -> AppSessionStore:
    """Django's default cache when Django is configured, else a process-local store."""
    try:
        from django.conf import settings

        if settings.configured:
            return DjangoCacheAppSessionStore("default")
    except ImportError:  # pragma: no cover - Django is a dependency, but the client may be lifted
        pass
    return MemoryAppSessionStore()


def _normalize_timeout(value: Any) -> float | tuple[float, float]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigurationError("timeout must be a number or a (connect, read) pair.")
        return (float(value[0]), float(value[1]))
    return float(value)


def _user_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key == "custom_data" and not isinstance(value, str):
            value = jsonlib.dumps(value, separators=(",", ":"))
        elif key == "tag_list" and not isinstance(value, str):
            value = ",".join(str(v) for v in value)
        body[key] = value
    return body


def _json(response: requests.Response, method: str, path: str) -> dict[str, Any]:
    if not response.content or not response.content.strip():
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise APIError(
            f"Invalid JSON in the answer to {method} {path}",
            status=response.status_code,
            response=response,
            method=method,
            path=path,
        ) from exc
    return data if isinstance(data, dict) else {"items": data}


def _server_clock_offset(response: requests.Response | None) -> float | None:
    """Seconds the server's clock (its ``Date`` header) is ahead of ours, if it says."""
    if response is None or not response.headers.get("Date"):
        return None
    try:
        server_now = email.utils.parsedate_to_datetime(response.headers["Date"])
    except (TypeError, ValueError, IndexError):
        return None
    return server_now.timestamp() - time.time()


class _BaseApi(UserReads, BlobReads):
    """The calls any session may make (reads); subclasses decide which token is sent."""

    _client: ConnectyCubeClient

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        safe: bool | None = None,
    ) -> requests.Response:
        raise NotImplementedError

    def _json_call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _json(self._call(method, path, **kwargs), method, "/" + path)


class ConnectyCubeClient(AdminApi, _BaseApi):
    """A client for one ConnectyCube application.

    Credentials are arguments, so one process may hold clients for several applications.
    Thread-safe: share one instance per application to share its connection pool. ``throttle``
    (a :class:`~.transport.Throttle`) paces every request against a limit shared with others.
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
        self.renew_margin = renew_margin
        self.lock_wait = lock_wait
        self._clock = clock
        self.store: AppSessionStore = app_session_store or default_app_session_store()
        self._store_key = store_key(self.api_url, application_id, auth_key)
        self.transport = Transport(
            self.api_url,
            timeout=_normalize_timeout(timeout),
            policy=RetryPolicy(retries=int(retries), max_retry_wait=float(max_retry_wait)),
            budget=retry_budget,
            user_agent=f"django-connectycube/{__version__}",
            pooled=pooled,
            pool_size=pool_size,
            sleep=sleep,
            throttle=throttle,
        )
        self._app: StoredAppSession | None = None
        self._app_lock = threading.Lock()
        self._stored_expiry = 0.0
        self._clock_offset = 0.0
        #: Write a slid expiry back to the store only when it moved this far (saves cache writes).
        self.store_refresh_interval = 300.0

    def __repr__(self) -> str:
        return f"<ConnectyCubeClient {self.api_url} app={self.application_id}>"

    @classmethod
    def from_settings(cls, **overrides: Any) -> ConnectyCubeClient:
        """Build a client from ``settings.CONNECTYCUBE``; keyword arguments override settings."""
        from django_connectycube.conf import app_settings

        def setting(name: str, default: Any) -> Any:
            try:
                return getattr(app_settings, name)
            except AttributeError:
                return default

        kwargs: dict[str, Any] = {
            "timeout": setting("TIMEOUT", DEFAULT_TIMEOUT),
            "retries": setting("RETRIES", 3),
            "max_retry_wait": setting("MAX_RETRY_WAIT", 30.0),
            "admin_api_key": setting("ADMIN_API_KEY", None),
        }
        if "throttle" not in overrides:
            from django_connectycube.ratelimit import throttle_from_settings

            patience = float(overrides.get("max_retry_wait", kwargs["max_retry_wait"]))
            kwargs["throttle"] = throttle_from_settings(max_wait=patience)
        if "app_session_store" not in overrides:
            kwargs["app_session_store"] = DjangoCacheAppSessionStore(
                setting("APP_SESSION_CACHE", "default")
            )
        kwargs.update(overrides)
        positional = {
            "api_url": kwargs.pop("api_url", None) or app_settings.API_URL,
            "application_id": kwargs.pop("application_id", None) or app_settings.APPLICATION_ID,
            "auth_key": kwargs.pop("auth_key", None) or app_settings.AUTH_KEY,
            "auth_secret": kwargs.pop("auth_secret", None) or app_settings.AUTH_SECRET,
        }
        return cls(**positional, **kwargs)

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

    # ---- transport with the application session --------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        safe: bool | None = None,
    ) -> requests.Response:
        token = self._app_token()
        kwargs: dict[str, Any] = {"params": params, "json": json, "safe": safe}
        try:
            response = self.transport.request(method, path, headers={"CB-Token": token}, **kwargs)
        except SessionExpired as exc:
            # Rejected before processing, so even a POST may be sent again with a new token.
            _info("Application session expired on %s /%s; renewing", method, path)
            self._learn_server_clock(exc.response)
            token = self._app_token(stale=token)
            response = self.transport.request(method, path, headers={"CB-Token": token}, **kwargs)
        self._observe_app_expiry(response, token)
        return response

    def _expiry_from(self, response: requests.Response) -> float | None:
        """The token's expiry on this machine's clock, corrected by the server's ``Date``."""
        expires = parse_expiration_header(response.headers.get("CB-Token-ExpirationDate"))
        if expires is None:
            return None
        server_now = None
        date_header = response.headers.get("Date")
        if date_header:
            try:
                server_now = email.utils.parsedate_to_datetime(date_header)
            except (TypeError, ValueError, IndexError):
                server_now = None
        if server_now is not None:
            return self._clock() + (expires - server_now).total_seconds()
        return expires.timestamp()

    def _fresh(self, session: StoredAppSession | None, stale: str | None = None) -> bool:
        return (
            session is not None
            and session.token != stale
            and session.expires_at - self.renew_margin > self._clock()
        )

    def _learn_server_clock(self, response: requests.Response | None) -> bool:
        """Adopt the server's clock for signing when it is more than a minute from ours."""
        offset = _server_clock_offset(response)
        if offset is None or abs(offset - self._clock_offset) <= 60:
            return False
        _warn("The server's clock is %.0f s ahead of ours; signing on its clock", offset)
        self._clock_offset = offset
        return True

    def app_token(self) -> str:
        """The shared application session token (created or renewed if needed)."""
        return self._app_token()

    def _app_token(self, stale: str | None = None) -> str:
        current = self._app
        if self._fresh(current, stale):
            return current.token  # type: ignore[union-attr]
        with self._app_lock:
            current = self._app
            if self._fresh(current, stale):
                return current.token  # type: ignore[union-attr]
            session = self._shared_app_session(stale)
            self._app = session
            self._stored_expiry = session.expires_at
            register_secret(session.token)
            return session.token

    def _store(self, operation: str, *args: Any) -> Any:
        """Call the store; a broken cache degrades to a per-process session, never to an error."""
        try:
            return getattr(self.store, operation)(*args)
        except Exception as exc:  # any cache backend failure
            _warn("App session store %s failed: %s", operation, redact(exc))
            return None

    def _shared_app_session(self, stale: str | None) -> StoredAppSession:
        """Read the shared token, or renew it under the store's lock (one renewer at a time)."""
        key = self._store_key
        deadline = time.monotonic() + self.lock_wait
        while True:
            stored = self._store("get", key)
            if self._fresh(stored, stale):
                return stored  # type: ignore[no-any-return]
            owner = self._store("acquire_lock", key, self.lock_wait + 30.0)
            if owner:
                try:
                    stored = self._store("get", key)
                    if self._fresh(stored, stale):
                        return stored  # type: ignore[no-any-return]
                    return self._create_shared_app_session()
                finally:
                    self._store("release_lock", key, owner)
            if time.monotonic() >= deadline:
                _warn("Timed out waiting for another process to renew the app session")
                return self._create_shared_app_session()
            time.sleep(0.05)

    def _create_shared_app_session(self) -> StoredAppSession:
        session = self.create_app_session()
        expires_at = (
            session.expires_at.timestamp()
            if session.expires_at
            else self._clock() + DEFAULT_SESSION_TTL
        )
        stored = StoredAppSession(token=session.token, expires_at=expires_at)
        self._store("set", self._store_key, stored)
        _info("Created the application session for app %s", self.application_id)
        return stored

    def _observe_app_expiry(self, response: requests.Response, token: str) -> None:
        expires_at = self._expiry_from(response)
        if expires_at is None:
            return
        current = self._app
        if current is not None and current.token == token and expires_at > current.expires_at:
            self._app = StoredAppSession(token=token, expires_at=expires_at)
        if expires_at - self._stored_expiry >= self.store_refresh_interval:
            stored = self._store("get", self._store_key)
            if stored is None or stored.token == token:
                self._store("set", self._store_key, StoredAppSession(token, expires_at))
            self._stored_expiry = expires_at

    # ---- sessions ------------------------------------------------------------------------

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
                _warn("Server rejected our signing timestamp; creating session unsigned")
                response = self.transport.request("POST", "session", json=unsigned, safe=True)
        session = self._session_from(response, "POST", "/session")
        register_secret(session.token)
        return session

    def _session_from(self, response: requests.Response, method: str, path: str) -> Session:
        expires = self._expiry_from(response)
        expires_at = datetime.fromtimestamp(expires, tz=timezone.utc) if expires else None
        return Session.from_api(_json(response, method, path), expires_at=expires_at)

    def create_app_session(self) -> Session:
        """A new application session of its own (not the shared one the client uses)."""
        return self._create_session()

    def create_user_session(
        self, *, login: str | None = None, email: str | None = None, password: str
    ) -> Session:
        """Log a user in with login or email and password; returns a user session."""
        if bool(login) == bool(email):
            raise ValueError("Pass exactly one of login= or email=.")
        user = {"login": login} if login else {"email": email}
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
        """Log a user in through the Custom Identity Provider with a token our backend issued."""
        register_secret(external_token)
        return self._create_session({"user": {"login": external_token}})

    def create_guest_session(self, full_name: str | None = None) -> Session:
        """A guest user's session (lasts one day)."""
        user: dict[str, Any] = {"guest": "1"}
        if full_name:
            user["full_name"] = full_name
        return self._create_session({"user": user})

    def get_session(self, token: str) -> Session:
        """The session behind a token (``SessionExpired`` if it is gone)."""
        return self.as_user(token).get_session()

    def upgrade_session(
        self,
        token: str,
        *,
        login: str | None = None,
        email: str | None = None,
        password: str | None = None,
    ) -> User:
        """Log a user into an existing application session (``POST /login``); same token."""
        return self.as_user(token).login(login=login, email=email, password=password)

    def downgrade_session(self, token: str) -> None:
        """Log the user out, keeping the token as an application session (``DELETE /login``)."""
        self.as_user(token).logout()

    def destroy_session(self, token: str) -> None:
        """End a session for good (``DELETE /session``)."""
        self.as_user(token).destroy_session()

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
        body = {"user": _user_body(fields)}
        return User.from_api(self._json_call("POST", "users", json=body, safe=False))

    def reset_password(self, email: str) -> None:
        """Ask ConnectyCube to email the user a password-reset link."""
        self._call("GET", "users/password/reset", params={"email": email}, safe=False)


class UserClient(_BaseApi):
    """Calls made with one user's session token; see the module docstring."""

    def __init__(
        self, client: ConnectyCubeClient, token: str, *, user_id: int | None = None
    ) -> None:
        if not token:
            raise ValueError("A user session token is required.")
        self._client = client
        self._token = token
        self.user_id = user_id
        register_secret(token)

    def __repr__(self) -> str:
        return f"<UserClient user_id={self.user_id} token=[redacted]>"

    @property
    def token(self) -> str:
        """The session token this view sends."""
        return self._token

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        safe: bool | None = None,
    ) -> requests.Response:
        return self._client.transport.request(
            method, path, params=params, json=json, safe=safe, headers={"CB-Token": self._token}
        )

    def _own_id(self, user_id: int | None) -> int:
        if user_id is not None:
            return int(user_id)
        if self.user_id is None:
            session = self.get_session()
            if session.user_id is None:
                raise ValueError("This token is an application session; it has no user.")
            self.user_id = session.user_id
        return int(self.user_id)

    # ---- session ---------------------------------------------------------------------------

    def get_session(self) -> Session:
        """This token's session (``GET /session``)."""
        response = self._call("GET", "session")
        return self._client._session_from(response, "GET", "/session")

    def login(
        self, *, login: str | None = None, email: str | None = None, password: str | None = None
    ) -> User:
        """Upgrade this application session to a user session (``POST /login``)."""
        if bool(login) == bool(email):
            raise ValueError("Pass exactly one of login= or email=.")
        body: dict[str, Any] = {"login": login} if login else {"email": email}
        if password is not None:
            body["password"] = password
        user = User.from_api(self._json_call("POST", "login", json=body, safe=True))
        self.user_id = user.id
        return user

    def logout(self) -> None:
        """Downgrade to an application session (``DELETE /login``)."""
        self._call("DELETE", "login")
        self.user_id = None

    def destroy_session(self) -> None:
        """Destroy this session (``DELETE /session``)."""
        self._call("DELETE", "session")
        forget_secret(self._token)

    # ---- users -----------------------------------------------------------------------------

    def update_user(
        self,
        user_id: int | None = None,
        fields: Mapping[str, Any] | None = None,
        /,
        **changes: Any,
    ) -> User:
        """Update the session's own user (``PUT /users/{id}``) with ``fields`` and/or keywords.

        Changing ``password`` requires ``old_password``. ``custom_data`` may be a dict (sent as
        JSON text) and ``tag_list`` a list.
        """
        merged = {**(fields or {}), **changes}
        if merged.get("password") and not merged.get("old_password"):
            raise ValueError("Changing the password requires old_password.")
        target = self._own_id(user_id)
        body = {"user": _user_body(merged)}
        return User.from_api(self._json_call("PUT", f"users/{target}", json=body))

    def delete_self(self) -> None:
        """Delete the session's own user (``DELETE /users/{id}``)."""
        self._call("DELETE", f"users/{self._own_id(None)}")

    def delete_user_by_external_user_id(self, external_user_id: int) -> None:
        """``DELETE /users/external/{id}``, a legacy call: the route addresses the deprecated
        INTEGER ``external_user_id``, not the string ``external_id``; prefer :meth:`delete_self`."""
        self._call("DELETE", f"users/external/{int(external_user_id)}")

    def delete_user_by_external_id(self, external_id: int) -> None:
        """Deprecated name of :meth:`delete_user_by_external_user_id` (it never addressed the
        string ``external_id``)."""
        warnings.warn(
            "delete_user_by_external_id() is deprecated: it addresses the integer "
            "external_user_id; call delete_user_by_external_user_id()",
            DeprecationWarning,
            stacklevel=2,
        )
        self.delete_user_by_external_user_id(external_id)

    # ---- blobs -----------------------------------------------------------------------------

    def create_blob(self, name: str, content_type: str, *, public: bool = False) -> Blob:
        """Step 1 of an upload: declare the blob and get its upload access (``POST /blobs``)."""
        body = {"blob": {"content_type": content_type, "name": name, "public": public}}
        return Blob.from_api(self._json_call("POST", "blobs", json=body, safe=False))

    def upload_blob_content(self, blob: Blob, content: bytes, *, name: str | None = None) -> None:
        """Step 2: POST the bytes to the storage URL from ``blob.access.params`` (expects 201)."""
        if blob.access is None or not blob.access.params:
            raise ValueError("This blob has no upload access; create it with create_blob().")
        parts = urlsplit(blob.access.params)
        target = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        form = parse_qsl(parts.query, keep_blank_values=True)
        content_type = blob.content_type or "application/octet-stream"
        files = {"file": (name or blob.name or "file", content, content_type)}
        # No CB-Token here: the storage may be a third party (S3). Overwriting is idempotent.
        self._client.transport.request("POST", target, data=form, files=files, safe=True)

    def complete_blob(self, blob_id: int, size: int) -> None:
        """Step 3: mark the upload complete with its size (``PUT /blobs/{id}/complete``)."""
        self._call("PUT", f"blobs/{int(blob_id)}/complete", json={"blob": {"size": int(size)}})

    def delete_blob(self, blob_id: int) -> None:
        """Delete a blob."""
        self._call("DELETE", f"blobs/{int(blob_id)}")

    def upload_file(
        self,
        fileobj: IO[bytes] | bytes,
        name: str,
        content_type: str,
        public: bool = False,
    ) -> Blob:
        """Create, upload and complete a blob in one call; returns the completed blob."""
        content = fileobj if isinstance(fileobj, (bytes, bytearray)) else fileobj.read()
        if isinstance(content, str):
            content = content.encode("utf-8")
        content = bytes(content)
        blob = self.create_blob(name, content_type, public=public)
        self.upload_blob_content(blob, content, name=name)
        self.complete_blob(blob.id, len(content))
        return Blob(
            id=blob.id,
            uid=blob.uid,
            content_type=blob.content_type,
            name=blob.name,
            size=len(content),
            public=blob.public,
            blob_status="complete",
            set_completed_at=blob.set_completed_at,
            created_at=blob.created_at,
            updated_at=blob.updated_at,
            access=None,
            raw=blob.raw,
        )

    def set_avatar(
        self,
        fileobj: IO[bytes] | bytes,
        name: str,
        content_type: str,
        *,
        user_id: int | None = None,
        public: bool = False,
        custom_data: Mapping[str, Any] | None = None,
    ) -> User:
        """Upload an avatar and set ``avatar`` and ``custom_data.avatar_uid`` on the user.

        Other keys of ``custom_data`` are kept: pass the current ``custom_data`` to save the
        extra ``GET /users/{id}`` that otherwise reads it.
        """
        target = self._own_id(user_id)
        blob = self.upload_file(fileobj, name, content_type, public=public)
        current = (
            dict(custom_data)
            if custom_data is not None
            else (self.get_user(target).custom_data_json)
        )
        current["avatar_uid"] = blob.uid
        return self.update_user(target, avatar=blob.uid, custom_data=current)

    def private_url(self, uid: str) -> str:
        """The URL of a private blob readable with this session's token."""
        return self.blob_private_url(uid, self._token)
