"""The emulator's WSGI application: routing, authentication, handlers, and the control API.

Plain WSGI on purpose: it runs under our threaded server, waitress, or any WSGI test client,
and it imports nothing from Django, so the emulator works in any Python process (a CI job, a
Node SDK check, a benchmark) without settings.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

from django_connectycube.client.signing import sign

from .faults import FaultRule, FaultSet, route_matches
from .identity import (
    DEFAULT_CIDP_MAPPING,
    FirebaseVerifier,
    HmacFirebaseVerifier,
    call_cidp,
)
from .queries import v1_page, v1_select, v2_page
from .store import SIGNATURE_WINDOW, Blob, Session, Store, User
from .wire import (
    MAX_JSON_BODY,
    MAX_UPLOAD_BODY,
    ApiError,
    DropConnection,
    coerce_bool,
    coerce_int,
    coerce_str,
    expiry_header,
    header_params,
    iso,
    parse_json_body,
    parse_multipart,
    parse_query,
    require_mapping,
    split_list,
)

__all__ = ["Emulator"]

logger = logging.getLogger("django_connectycube.emulator")

NEED_USER = ApiError(403, {"base": ["Forbidden. Need user."]})
NO_SESSION = {"base": ["Required session does not exist"]}
NOT_FOUND = ["Not found"]
UPLOAD_PATH = "/_storage"
CONTROL_PREFIX = "/_emulator/"

_REASONS = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
_CORS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "CB-Token-ExpirationDate, Date"),
]
_PREFLIGHT_HEADERS = "CB-Token, CB-AuthKey, CB-SDK, Content-Type, Accept, Authorization"
_FAULT_MESSAGES = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_CONFIG_KEYS = (
    "application_id",
    "auth_key",
    "auth_secret",
    "require_signature",
    "cidp_url",
    "cidp_response_mapping",
    "deny_auto_create",
    "firebase_key",
)


class Request:
    """One incoming request, with its parameters parsed lazily (uploads never parse JSON)."""

    __slots__ = (
        "_params",
        "environ",
        "json_suffix",
        "method",
        "path",
        "session",
        "template",
    )

    def __init__(self, environ: dict[str, Any], method: str, path: str, json_suffix: bool) -> None:
        self.environ = environ
        self.method = method
        self.path = path
        self.json_suffix = json_suffix
        self.session: Session | None = None
        self.template = ""
        self._params: dict[str, Any] | None = None

    def header(self, name: str) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    @property
    def base_url(self) -> str:
        scheme = self.environ.get("wsgi.url_scheme", "http")
        host = self.environ.get("HTTP_HOST")
        if not host:
            name = self.environ.get("SERVER_NAME", "127.0.0.1")
            host = f"{name}:{self.environ.get('SERVER_PORT', '80')}"
        return f"{scheme}://{host}"

    def read_body(self, limit: int) -> bytes:
        """The raw body, refusing (413) anything over ``limit`` before reading it."""
        raw_length = self.environ.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError as exc:
            raise ApiError(400, ["Invalid Content-Length"]) from exc
        if length < 0:
            raise ApiError(400, ["Invalid Content-Length"])
        if length > limit:
            raise ApiError(413, [f"Request body too large (limit is {limit} bytes)"])
        if length == 0:
            return b""
        stream = self.environ["wsgi.input"]
        body = stream.read(length)
        if len(body) < length:
            raise ApiError(400, ["Request body is shorter than its Content-Length"])
        return body

    @property
    def query(self) -> dict[str, Any]:
        return parse_query(self.environ.get("QUERY_STRING", ""))

    @property
    def params(self) -> dict[str, Any]:
        """Query parameters merged with the body (JSON, form, or multipart fields)."""
        if self._params is None:
            params = self.query
            body = self.read_body(MAX_JSON_BODY)
            if body:
                params.update(self._parse_body(body))
            self._params = params
        return self._params

    def _parse_body(self, body: bytes) -> dict[str, Any]:
        content_type, options = header_params(self.environ.get("CONTENT_TYPE", ""))
        if content_type == "application/json" or content_type.endswith("+json"):
            return parse_json_body(body)
        if content_type == "application/x-www-form-urlencoded":
            return self._parse_form(body)
        if content_type == "multipart/form-data":
            fields, _ = parse_multipart(body, options.get("boundary", ""))
            return parse_query(urlencode(list(fields.items())))
        stripped = body.lstrip()
        if stripped.startswith((b"{", b"[")):
            return parse_json_body(body)
        return self._parse_form(body)

    @staticmethod
    def _parse_form(body: bytes) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, ["Form body is not valid UTF-8"]) from exc
        return parse_query(text)


class Response:
    """A buffered answer: the servers write it in one go (no Nagle/delayed-ACK stalls)."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        raw: bytes | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        self.status = status
        self.headers = list(headers)
        if raw is not None:
            self.body = raw
            self.headers.append(("Content-Type", content_type))
        elif body is None:
            self.body = b""
            self.headers.append(("Content-Type", "text/plain; charset=utf-8"))
        else:
            self.body = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            self.headers.append(("Content-Type", content_type))


Handler = Callable[..., Response]


class _Route:
    __slots__ = ("auth", "handler", "method", "parts", "template")

    def __init__(self, method: str, template: str, handler: str, auth: str) -> None:
        self.method = method
        self.template = f"{method} {template.replace(':int}', '}')}"
        self.handler = handler
        self.auth = auth
        self.parts = template.strip("/").split("/")

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.parts):
            return None
        captured: dict[str, str] = {}
        for pattern, segment in zip(self.parts, segments, strict=True):
            if pattern.startswith("{"):
                name = pattern[1:-1]
                if name.endswith(":int"):
                    if not segment.isdigit():
                        return None
                    name = name[:-4]
                if not segment:
                    return None
                captured[name] = segment
            elif pattern != segment:
                return None
        return captured


# (method, path template, handler method, auth) — auth is one of:
#   none: no token needed; session: any valid token; user: a user session;
#   signup: a token or the CB-AuthKey header; optional: a token is used if given.
# Order matters where templates overlap: fixed segments come before placeholders.
_ROUTE_TABLE: list[tuple[str, str, str, str]] = [
    ("POST", "/session", "handle_create_session", "none"),
    ("GET", "/session", "handle_get_session", "session"),
    ("DELETE", "/session", "handle_delete_session", "session"),
    ("POST", "/login", "handle_login", "session"),
    ("DELETE", "/login", "handle_logout", "session"),
    ("POST", "/users", "handle_create_user", "signup"),
    ("GET", "/users", "handle_list_users", "session"),
    ("GET", "/users/v2", "list_users_v2", "session"),
    ("GET", "/users/by_login", "handle_user_by_login", "session"),
    ("GET", "/users/by_email", "handle_user_by_email", "session"),
    ("GET", "/users/phone", "handle_user_by_phone", "session"),
    ("GET", "/users/by_phone", "handle_user_by_phone", "session"),
    ("GET", "/users/by_facebook_id", "handle_user_by_facebook_id", "session"),
    ("GET", "/users/by_twitter_id", "handle_user_by_twitter_id", "session"),
    ("GET", "/users/by_full_name", "handle_users_by_full_name", "session"),
    ("GET", "/users/by_tags", "handle_users_by_tags", "session"),
    ("GET", "/users/password/reset", "handle_reset_password", "session"),
    ("POST", "/users/password/reset", "handle_reset_password", "session"),
    ("GET", "/users/external/{external_id}", "handle_user_by_external_id", "session"),
    ("DELETE", "/users/external/{external_id}", "handle_delete_user_by_external_id", "user"),
    # Any segment, not only digits: the server authorizes before it resolves the id, so the JS
    # SDK's "PUT /users/undefined" after a logout answers 403 (need user), not 404.
    ("GET", "/users/{id}", "handle_get_user", "session"),
    ("PUT", "/users/{id}", "handle_update_user", "user"),
    ("DELETE", "/users/{id}", "handle_delete_user", "user"),
    ("POST", "/blobs", "handle_create_blob", "user"),
    ("GET", "/blobs", "handle_list_blobs", "user"),
    ("POST", UPLOAD_PATH, "handle_upload", "none"),
    ("PUT", "/blobs/{id}/complete", "handle_complete_blob", "user"),
    ("POST", "/blobs/{id}/complete", "handle_complete_blob", "user"),
    ("GET", "/blobs/{uid}/object", "handle_blob_object", "session"),
    ("GET", "/blobs/{uid}/download", "handle_blob_download", "optional"),
    ("GET", "/blobs/{id}", "handle_get_blob", "optional"),
    ("DELETE", "/blobs/{id}", "handle_delete_blob", "user"),
]

_CONTROL_TABLE: list[tuple[str, str, str]] = [
    ("GET", "/_emulator/health", "control_health"),
    ("POST", "/_emulator/reset", "control_reset"),
    ("GET", "/_emulator/state", "control_state"),
    ("GET", "/_emulator/clock", "control_get_clock"),
    ("POST", "/_emulator/clock", "control_clock"),
    ("GET", "/_emulator/config", "control_get_config"),
    ("POST", "/_emulator/config", "control_config"),
    ("GET", "/_emulator/faults", "control_get_faults"),
    ("POST", "/_emulator/faults", "control_add_fault"),
    ("DELETE", "/_emulator/faults", "control_clear_faults"),
    ("DELETE", "/_emulator/faults/{id:int}", "control_remove_fault"),
    ("GET", "/_emulator/requests", "control_requests"),
    ("DELETE", "/_emulator/requests", "control_reset_requests"),
]


def _index_routes(table: Iterable[_Route]) -> dict[str, list[_Route]]:
    """Bucket routes by their first path segment, so a request tries only a handful."""
    index: dict[str, list[_Route]] = {}
    for route in table:
        index.setdefault(route.parts[0], []).append(route)
    return index


_ROUTES = _index_routes(_Route(m, t, h, a) for m, t, h, a in _ROUTE_TABLE)
_CONTROL_ROUTES = _index_routes(_Route(m, t, h, "none") for m, t, h in _CONTROL_TABLE)


class Emulator:
    """A ConnectyCube REST server in a WSGI callable, with its state and test helpers.

    Each instance has its own store, clock, faults and counters. Serve it with
    :class:`~django_connectycube.emulator.EmulatorServer`, or call it as a WSGI app.
    """

    def __init__(
        self,
        application_id: int = 1,
        auth_key: str = "emulator-auth-key",
        auth_secret: str = "emulator-auth-secret",  # noqa: S107
        require_signature: bool = False,
        cidp_url: str | None = None,
        cidp_response_mapping: Mapping[str, Any] | None = None,
        deny_auto_create: bool = False,
        firebase_key: str = "emulator-firebase-key",
        firebase_verifier: FirebaseVerifier | None = None,
    ) -> None:
        self._initial_config: dict[str, Any] = {
            "application_id": int(application_id),
            "auth_key": auth_key,
            "auth_secret": auth_secret,
            "require_signature": bool(require_signature),
            "cidp_url": cidp_url,
            "cidp_response_mapping": dict(cidp_response_mapping) if cidp_response_mapping else None,
            "deny_auto_create": bool(deny_auto_create),
            "firebase_key": firebase_key,
        }
        self._custom_firebase_verifier = firebase_verifier
        self.store = Store()
        self.faults = FaultSet()
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        #: Set by :class:`EmulatorServer` once it listens; ``None`` when not served.
        self.url: str | None = None
        self._apply_config(self._initial_config)

    # -- configuration -------------------------------------------------------------------------

    def _apply_config(self, config: Mapping[str, Any]) -> None:
        self.application_id: int = int(config["application_id"])
        self.auth_key: str = config["auth_key"]
        self.auth_secret: str = config["auth_secret"]
        self.require_signature: bool = bool(config["require_signature"])
        self.cidp_url: str | None = config["cidp_url"]
        self.cidp_response_mapping: dict[str, Any] | None = config["cidp_response_mapping"]
        self.deny_auto_create: bool = bool(config["deny_auto_create"])
        self.firebase_key: str = config["firebase_key"]
        self.firebase_verifier: FirebaseVerifier = (
            self._custom_firebase_verifier or HmacFirebaseVerifier(self.firebase_key)
        )

    @property
    def config(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _CONFIG_KEYS}

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings at run time (a shared test server can't be restarted per test)."""
        unknown = set(changes) - set(_CONFIG_KEYS)
        if unknown:
            raise ApiError(422, [f"Unknown setting(s): {', '.join(sorted(unknown))}"])
        config = self.config
        for key, value in changes.items():
            if key in ("require_signature", "deny_auto_create"):
                config[key] = coerce_bool(value, key)
            elif key == "application_id":
                config[key] = coerce_int(value, key, minimum=1)
            elif key == "cidp_response_mapping":
                config[key] = dict(require_mapping(value, key)) or None
            elif key == "cidp_url":
                config[key] = None if value in (None, "") else coerce_str(value, key)
            else:
                if not isinstance(value, str) or not value:
                    raise ApiError.field(key, "must be a non-empty string")
                config[key] = value
        with self.store.lock:
            self._apply_config(config)
        return self.config

    # -- Python-side helpers for tests ---------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: state, clock offset, faults, counters, run-time configuration."""
        with self.store.lock:
            self.store.reset()
            self._apply_config(self._initial_config)
        self.faults.clear()
        self.reset_counters()

    def now(self) -> datetime:
        return self.store.now()

    def advance_clock(self, seconds: float) -> datetime:
        return self.store.advance_clock(seconds)

    def set_fault(self, route_pattern: str = "*", **options: Any) -> FaultRule:
        """Add a fault rule; options are the control API's keys (``error_rate``, ``count``…)."""
        return self.faults.add({"route": route_pattern, **options})

    def clear_faults(self) -> None:
        self.faults.clear()

    def request_counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    def request_count(self, route_pattern: str | None = None) -> int:
        """Requests served (control calls excluded), optionally for matching routes only."""
        counts = self.request_counts()
        if route_pattern is None:
            return sum(counts.values())
        return sum(n for key, n in counts.items() if route_matches(route_pattern, key, key))

    def reset_counters(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    def state(self) -> dict[str, Any]:
        return self.store.snapshot()

    @property
    def users(self) -> list[dict[str, Any]]:
        return self.state()["users"]

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return self.state()["sessions"]

    @property
    def blobs(self) -> list[dict[str, Any]]:
        return self.state()["blobs"]

    @property
    def outbox(self) -> list[dict[str, Any]]:
        return self.state()["outbox"]

    def create_user(self, **fields: Any) -> dict[str, Any]:
        """Seed a user directly (same validation as ``POST /users``); returns its wire object."""
        return self.store.create_user(fields, source="seed").to_json()

    def create_session(self, user_id: int | None = None) -> str:
        """Seed a session token (an application session when ``user_id`` is ``None``)."""
        with self.store.lock:
            user = None
            if user_id is not None:
                user = self.store.users.get(user_id)
                if user is None:
                    raise KeyError(f"no user with id {user_id}")
            return self.store.create_session(self.application_id, user).token

    def get_blob_data(self, uid: str) -> bytes | None:
        with self.store.lock:
            blob = self.store.blobs_by_uid.get(uid)
            return None if blob is None else blob.data

    # -- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        raw_path = environ.get("PATH_INFO", "/") or "/"
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            raw_path = raw_path.encode("latin-1").decode("utf-8")
        if method == "OPTIONS":
            response = self._preflight(environ)
        elif raw_path.startswith(CONTROL_PREFIX):
            response = self._dispatch_control(environ, method, raw_path)
        else:
            response = self._dispatch(environ, method, raw_path)
        headers = response.headers + _CORS
        headers.append(("Content-Length", str(len(response.body))))
        if self.store.clock_offset:
            # A real server's Date follows its own clock; clients correct expiry and signature
            # timestamps by it, so an advanced clock must show here too.
            headers.append(("Date", formatdate(self.now().timestamp(), usegmt=True)))
        start_response(_REASONS.get(response.status, f"{response.status} Unknown"), headers)
        return [] if method == "HEAD" else [response.body]

    def _preflight(self, environ: Mapping[str, Any]) -> Response:
        requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS") or _PREFLIGHT_HEADERS
        return Response(
            204,
            headers=[
                ("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", requested),
                ("Access-Control-Max-Age", "86400"),
            ],
        )

    @staticmethod
    def _error(error: ApiError) -> Response:
        return Response(error.status, {"errors": error.errors}, error.headers)

    def _dispatch(self, environ: dict[str, Any], method: str, raw_path: str) -> Response:
        path = raw_path.rstrip("/") or "/"
        json_suffix = path.endswith(".json")
        if json_suffix:
            path = path[:-5]
        segments = path.strip("/").split("/")
        route, captured = None, None
        for candidate in _ROUTES.get(segments[0], ()):
            if candidate.method != method and not (method == "HEAD" and candidate.method == "GET"):
                continue
            captured = candidate.match(segments)
            if captured is not None:
                route = candidate
                break
        template = route.template if route is not None else f"{method} {path}"
        with self._counts_lock:
            self._counts[template] += 1
        request = Request(environ, method, path, json_suffix)
        request.template = template
        decision = self.faults.decide(template, f"{method} {path}")
        if decision is not None:
            if decision.latency:
                time.sleep(decision.latency)
            if decision.drop:
                raise DropConnection(f"fault: dropped {template}")
            if decision.hold is not None:
                self.faults.hold(decision.hold)
                raise DropConnection(f"fault: timed out {template}")
            if decision.status is not None:
                headers = []
                if decision.retry_after is not None:
                    headers.append(("Retry-After", _format_seconds(decision.retry_after)))
                message = _FAULT_MESSAGES.get(decision.status, HTTPStatus(decision.status).phrase)
                return Response(decision.status, {"errors": [message]}, headers)
        if route is None:
            return self._error(ApiError(404, NOT_FOUND))
        try:
            self._authenticate(request, route.auth)
            response = getattr(self, route.handler)(request, **(captured or {}))
        except ApiError as error:
            response = self._error(error)
        except DropConnection:
            raise
        except Exception:
            logger.exception("emulator handler failed: %s %s", method, raw_path)
            response = Response(500, {"errors": ["Internal Server Error"]})
        session = request.session
        if session is not None and session.token in self.store.sessions:
            response.headers.append(("CB-Token-ExpirationDate", expiry_header(session.expires_at)))
        return response

    def _dispatch_control(self, environ: dict[str, Any], method: str, raw_path: str) -> Response:
        segments = raw_path.rstrip("/").strip("/").split("/")
        for route in _CONTROL_ROUTES.get(segments[0], ()):
            captured = route.match(segments) if route.method == method else None
            if captured is None:
                continue
            request = Request(environ, method, raw_path, False)
            try:
                return getattr(self, route.handler)(request, **captured)
            except ApiError as error:
                return self._error(error)
            except Exception:
                logger.exception("emulator control call failed: %s %s", method, raw_path)
                return Response(500, {"errors": ["Internal Server Error"]})
        return self._error(ApiError(404, NOT_FOUND))

    # -- authentication ------------------------------------------------------------------------

    def _authenticate(self, request: Request, mode: str) -> None:
        if mode == "none":
            return
        token = request.header("CB-Token")
        if not token and mode == "optional":
            token = request.query.get("token")
            if not isinstance(token, str):
                token = None
        if not token:
            if mode == "optional":
                return
            if mode == "signup" and request.header("CB-AuthKey") is not None:
                if request.header("CB-AuthKey") != self.auth_key:
                    raise ApiError(401, ["Unexpected auth key"])
                return
            raise ApiError(401, NO_SESSION)
        session = self.store.touch_session(token)
        if session is None:
            if mode == "optional":  # a stale ?token= must not hide a public file
                return
            raise ApiError(401, NO_SESSION)
        request.session = session
        if mode == "user" and session.user_id is None:
            raise NEED_USER

    def _current_user(self, request: Request) -> User:
        session = request.session
        if session is None or session.user_id is None:
            raise NEED_USER
        user = self.store.users.get(session.user_id)
        if user is None:
            raise ApiError(401, NO_SESSION)
        return user

    # -- identities (shared by POST /session and POST /login) ----------------------------------

    def _identify(
        self, credentials: Mapping[str, Any], provider_params: Mapping[str, Any]
    ) -> User | None:
        """The user these credentials stand for (created when the rules say so), or ``None``."""
        provider = provider_params.get("provider")
        if provider is not None and provider != "":
            return self._identify_provider(provider, provider_params)
        if not credentials:
            return None
        guest = credentials.get("guest")
        if guest not in (None, "", "0", 0, False, "false"):
            full_name = credentials.get("full_name")
            fields = {"full_name": full_name} if full_name is not None else {}
            return self.store.create_user(
                fields, source="guest", is_guest=True, require_password=False
            )
        login = credentials.get("login")
        email = credentials.get("email")
        password = credentials.get("password")
        if login in (None, "") and email in (None, ""):
            raise ApiError(422, {"login": ["can't be blank (login or email)"]})
        login = None if login in (None, "") else coerce_str(login, "login")
        email = None if email in (None, "") else coerce_str(email, "email")
        if password not in (None, ""):
            password = coerce_str(password, "password")
        if self.cidp_url and login is not None:
            with self.store.lock:
                local = self.store.user_by_login(login)
                local_has_password = local is not None and local.password_hash is not None
            if password in (None, "") or not local_has_password:
                return self._identify_cidp(login)
        if password in (None, ""):
            raise ApiError(422, {"password": ["can't be blank"]})
        with self.store.lock:
            user = (
                self.store.user_by_login(login) if login else self.store.user_by_email(email or "")
            )
            if user is not None:
                if not user.check_password(password):
                    raise ApiError(401, ["Invalid password"])
                return user
            if self.deny_auto_create:
                raise ApiError(404, ["User not found"])
            fields = {"password": password}
            if login:
                fields["login"] = login
            if email:
                fields["email"] = email
            return self.store.create_user(fields, source="auto")

    def _identify_cidp(self, token: str) -> User:
        assert self.cidp_url is not None
        fields = call_cidp(self.cidp_url, token, self.cidp_response_mapping or DEFAULT_CIDP_MAPPING)
        uid = fields["uid"]
        with self.store.lock:
            user = self.store.user_by_external_id(uid)
            if user is not None:
                return user
            data: dict[str, Any] = {"external_id": uid}
            for name in ("login", "email", "full_name", "phone"):
                value = fields.get(name)
                if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                    data[name] = str(value)
            # A mapped login/email that is invalid or taken must not block the login: the user
            # is identified by ``uid``; drop the offending field instead.
            _, errors = self.store._clean_fields(data, None)
            for name in errors:
                data.pop(name, None)
            if not data.get("login") and not data.get("email"):
                data["login"] = f"cidp_{uid}"[:70]
                if self.store.user_by_login(data["login"]) is not None:
                    data["login"] = f"cidp_{secrets.token_hex(6)}"
            return self.store.create_user(data, source="cidp", require_password=False)

    def _identify_provider(self, provider: Any, params: Mapping[str, Any]) -> User:
        if provider not in ("firebase_phone", "firebase_email"):
            raise ApiError(422, {"provider": [f"is not supported by the emulator: {provider!r}"]})
        keys = require_mapping(params.get(provider), provider)
        project_id = keys.get("project_id")
        access_token = keys.get("access_token")
        if project_id in (None, ""):
            raise ApiError.field(f"{provider}[project_id]", "can't be blank")
        if access_token in (None, ""):
            raise ApiError.field(f"{provider}[access_token]", "can't be blank")
        identity = self.firebase_verifier(
            provider,
            coerce_str(project_id, "project_id"),
            coerce_str(access_token, "access_token"),
            self.store.now(),
        )
        with self.store.lock:
            for user in self.store.users.values():
                if user.firebase_uid == identity.uid:
                    return user
            data: dict[str, Any] = {}
            if identity.phone_number:
                data["phone"] = identity.phone_number
            if identity.email and self.store.user_by_email(identity.email) is None:
                data["email"] = identity.email
            return self.store.create_user(
                data, source=provider, require_password=False, firebase_uid=identity.uid
            )

    def _check_signature(self, params: Mapping[str, Any]) -> None:
        signature = params.get("signature")
        if signature in (None, ""):
            if self.require_signature:
                raise ApiError(422, ["Unexpected signature"])
            return
        nonce, timestamp = params.get("nonce"), params.get("timestamp")
        if nonce in (None, ""):
            raise ApiError.field("nonce", "can't be blank")
        if timestamp in (None, ""):
            raise ApiError.field("timestamp", "can't be blank")
        moment = coerce_int(timestamp, "timestamp")
        if abs(self.store.now().timestamp() - moment) > SIGNATURE_WINDOW.total_seconds():
            raise ApiError.field("timestamp", "is too far from the server time")
        expected = sign(params, self.auth_secret)
        if not isinstance(signature, str) or not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(422, ["Unexpected signature"])
        if not self.store.use_nonce(str(nonce), str(timestamp)):
            raise ApiError.field("nonce", "has already been used with this timestamp")

    # -- sessions ------------------------------------------------------------------------------

    def handle_create_session(self, request: Request) -> Response:
        params = request.params
        for name in ("application_id", "auth_key"):
            if params.get(name) in (None, ""):
                raise ApiError.field(name, "can't be blank")
        if coerce_int(params["application_id"], "application_id") != self.application_id:
            raise ApiError(422, ["Unknown application"])
        if params["auth_key"] != self.auth_key:
            raise ApiError(422, ["Unexpected auth key"])
        self._check_signature(params)
        credentials = require_mapping(params.get("user"), "user")
        user = self._identify(credentials, params)
        session = self.store.create_session(
            self.application_id, user, nonce=params.get("nonce"), ts=params.get("timestamp")
        )
        request.session = session
        return Response(201, {"session": session.to_json(user)})

    def handle_get_session(self, request: Request) -> Response:
        session = request.session
        assert session is not None
        user = self.store.users.get(session.user_id) if session.user_id is not None else None
        return Response(200, {"session": session.to_json(user)})

    def handle_delete_session(self, request: Request) -> Response:
        assert request.session is not None
        self.store.destroy_session(request.session.token)
        return Response(200)

    def handle_login(self, request: Request) -> Response:
        params = request.params
        user = self._identify(params, params)
        if user is None:
            raise ApiError(422, {"login": ["can't be blank (login or email)"]})
        assert request.session is not None
        self.store.bind_session(request.session, user)
        return Response(200, {"user": user.to_json()})

    def handle_logout(self, request: Request) -> Response:
        assert request.session is not None
        self.store.bind_session(request.session, None)
        return Response(200)

    # -- users ---------------------------------------------------------------------------------

    def handle_create_user(self, request: Request) -> Response:
        params = request.params
        if "user" not in params:
            raise ApiError.field("user", "can't be blank")
        data = require_mapping(params["user"], "user")
        user = self.store.create_user(data)
        return Response(201, {"user": user.to_json()})

    def _user_or_404(self, user: User | None) -> Response:
        if user is None:
            raise ApiError(404, NOT_FOUND)
        return Response(200, {"user": user.to_json()})

    def handle_get_user(self, request: Request, id: str) -> Response:
        return self._user_or_404(self.store.users.get(int(id)) if id.isdigit() else None)

    def _required_param(self, request: Request, name: str) -> str:
        value = request.params.get(name)
        if value in (None, ""):
            raise ApiError.field(name, "can't be blank")
        return coerce_str(value, name)

    def handle_user_by_login(self, request: Request) -> Response:
        login = self._required_param(request, "login")
        with self.store.lock:
            return self._user_or_404(self.store.user_by_login(login))

    def handle_user_by_email(self, request: Request) -> Response:
        email = self._required_param(request, "email")
        with self.store.lock:
            return self._user_or_404(self.store.user_by_email(email))

    def _user_by_attribute(self, request: Request, param: str, attribute: str) -> Response:
        value = self._required_param(request, param)
        with self.store.lock:
            found = next(
                (u for u in self.store.users.values() if getattr(u, attribute) == value), None
            )
            return self._user_or_404(found)

    def handle_user_by_phone(self, request: Request) -> Response:
        return self._user_by_attribute(request, "phone", "phone")

    def handle_user_by_facebook_id(self, request: Request) -> Response:
        return self._user_by_attribute(request, "facebook_id", "facebook_id")

    def handle_user_by_twitter_id(self, request: Request) -> Response:
        return self._user_by_attribute(request, "twitter_id", "twitter_id")

    def handle_user_by_external_id(self, request: Request, external_id: str) -> Response:
        with self.store.lock:
            return self._user_or_404(self.store.user_by_external_id(external_id))

    def handle_users_by_full_name(self, request: Request) -> Response:
        needle = self._required_param(request, "full_name").lower()
        params = request.params
        with self.store.lock:
            found = [u for u in self.store.users.values() if needle in (u.full_name or "").lower()]
            found = v1_select(found, {"order": params.get("order")})
            return Response(200, v1_page(found, params))

    def handle_users_by_tags(self, request: Request) -> Response:
        params = request.params
        try:
            wanted = set(split_list(params.get("tags")))
        except ValueError as exc:
            raise ApiError.field("tags", "must be a list of strings") from exc
        if not wanted:
            raise ApiError.field("tags", "can't be blank")
        with self.store.lock:
            found = [u for u in self.store.users.values() if wanted.intersection(u.tags)]
            found = v1_select(found, {"order": params.get("order")})
            return Response(200, v1_page(found, params))

    def handle_list_users(self, request: Request) -> Response:
        params = request.params
        with self.store.lock:
            found = v1_select(self.store.users.values(), params)
            return Response(200, v1_page(found, params))

    def list_users_v2(self, request: Request) -> Response:
        params = request.params
        with self.store.lock:
            return Response(200, v2_page(list(self.store.users.values()), params))

    def handle_update_user(self, request: Request, id: str) -> Response:
        user = self._current_user(request)
        if not id.isdigit() or int(id) != user.id:
            raise ApiError(403, ["Forbidden. You can only update your own user."])
        data = require_mapping(request.params.get("user"), "user")
        self.store.update_user(user, data)
        return Response(200, {"user": user.to_json()})

    def handle_delete_user(self, request: Request, id: str) -> Response:
        user = self._current_user(request)
        if not id.isdigit() or int(id) != user.id:
            raise ApiError(403, ["Forbidden. You can only delete your own user."])
        self.store.delete_user(user)
        return Response(200)

    def handle_delete_user_by_external_id(self, request: Request, external_id: str) -> Response:
        user = self._current_user(request)
        with self.store.lock:
            target = self.store.user_by_external_id(external_id)
            if target is None:
                raise ApiError(404, NOT_FOUND)
            if target.id != user.id:
                raise ApiError(403, ["Forbidden. You can only delete your own user."])
            self.store.delete_user(target)
        return Response(200)

    def handle_reset_password(self, request: Request) -> Response:
        email = self._required_param(request, "email")
        self.store.record_password_reset(email)
        return Response(200)

    # -- blobs ---------------------------------------------------------------------------------

    def _blob(self, ref: str) -> Blob:
        blob = self.store.blobs.get(int(ref)) if ref.isdigit() else self.store.blobs_by_uid.get(ref)
        if blob is None:
            raise ApiError(404, NOT_FOUND)
        return blob

    def _upload_policy(self, blob: Blob) -> tuple[str, str]:
        assert blob.upload_expires is not None
        policy = (
            base64.urlsafe_b64encode(
                json.dumps({"expiration": iso(blob.upload_expires), "key": blob.uid}).encode()
            )
            .decode()
            .rstrip("=")
        )
        signature = hmac.new(self.auth_secret.encode(), policy.encode(), hashlib.sha256).hexdigest()
        return policy, signature

    def handle_create_blob(self, request: Request) -> Response:
        owner = self._current_user(request)
        data = require_mapping(request.params.get("blob"), "blob")
        errors: dict[str, list[str]] = {}
        for name in ("content_type", "name"):
            if data.get(name) in (None, ""):
                errors[name] = ["can't be blank"]
            elif not isinstance(data[name], str):
                errors[name] = ["must be a string"]
        if errors:
            raise ApiError(422, errors)
        public = (
            coerce_bool(data.get("public", False), "public")
            if data.get("public") is not None
            else False
        )
        blob = self.store.create_blob(owner, data["content_type"], data["name"], public)
        policy, signature = self._upload_policy(blob)
        now = self.store.now()
        query = urlencode(
            [
                ("Content-Type", blob.content_type),
                ("Expires", iso(blob.upload_expires) or ""),
                ("acl", "public-read" if blob.public else "authenticated-read"),
                ("key", blob.uid),
                ("policy", policy),
                ("success_action_status", "201"),
                ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
                ("x-amz-credential", f"EMULATOR/{now:%Y%m%d}/local/s3/aws4_request"),
                ("x-amz-date", f"{now:%Y%m%dT%H%M%SZ}"),
                ("x-amz-signature", signature),
            ],
            quote_via=quote,  # %20, never "+": the JS SDK decodes with decodeURIComponent
        )
        body = blob.to_json()
        body["blob_object_access"] = {
            "id": blob.id,
            "blob_id": blob.id,
            "expires": iso(blob.upload_expires),
            "object_access_type": "Write",
            "params": f"{request.base_url}{UPLOAD_PATH}?{query}",
        }
        return Response(201, {"blob": body})

    def handle_list_blobs(self, request: Request) -> Response:
        owner = self._current_user(request)
        params = request.params
        page = coerce_int(params.get("page", 1) or 1, "page", minimum=1)
        per_page = min(coerce_int(params.get("per_page", 10) or 10, "per_page", minimum=1), 100)
        with self.store.lock:
            mine = [b for b in self.store.blobs.values() if b.owner_id == owner.id]
        start = (page - 1) * per_page
        return Response(
            200,
            {
                "current_page": page,
                "per_page": per_page,
                "total_entries": len(mine),
                "items": [{"blob": b.to_json()} for b in mine[start : start + per_page]],
            },
        )

    def handle_upload(self, request: Request) -> Response:
        content_type, options = header_params(request.environ.get("CONTENT_TYPE", ""))
        if content_type != "multipart/form-data":
            raise ApiError(400, ["The upload must be multipart/form-data"])
        body = request.read_body(MAX_UPLOAD_BODY)
        fields, files = parse_multipart(body, options.get("boundary", ""))
        key = fields.get("key", "")
        with self.store.lock:
            blob = self.store.blobs_by_uid.get(key)
            if blob is None:
                raise ApiError(404, NOT_FOUND)
            policy, signature = self._upload_policy(blob)
            if fields.get("policy") != policy or not hmac.compare_digest(
                fields.get("x-amz-signature", ""), signature
            ):
                raise ApiError(403, ["Upload policy or signature does not match"])
            if blob.upload_expires is None or self.store.now() > blob.upload_expires:
                raise ApiError(403, ["Upload policy has expired"])
            upload = files.get("file")
            if upload is None:
                raise ApiError.field("file", "can't be blank", status=400)
            if len(upload.data) > 100 * 1024 * 1024:
                raise ApiError(413, ["File too large (limit is 100 MB)"])
            blob.data = upload.data
            blob.updated_at = self.store.now()
        status_text = fields.get("success_action_status", "201")
        status = int(status_text) if status_text in ("200", "201", "204") else 201
        etag = hashlib.md5(upload.data).hexdigest()  # noqa: S324 (S3's ETag, not security)
        location = f"{request.base_url}/blobs/{blob.uid}"
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<PostResponse><Location>{location}</Location><Bucket>emulator</Bucket>"
            f'<Key>{blob.uid}</Key><ETag>"{etag}"</ETag></PostResponse>'
        ).encode()
        if status == 204:
            return Response(204, raw=b"", content_type="application/xml")
        return Response(
            status, raw=xml, content_type="application/xml", headers=[("ETag", f'"{etag}"')]
        )

    def handle_complete_blob(self, request: Request, id: str) -> Response:
        owner = self._current_user(request)
        params = request.params
        nested = require_mapping(params.get("blob"), "blob")
        raw_size = nested.get("size", params.get("size"))
        with self.store.lock:
            blob = self._blob(id)
            if blob.owner_id != owner.id:
                raise ApiError(403, ["Forbidden. The blob belongs to another user."])
            if blob.data is None:
                raise ApiError(422, {"base": ["The file has not been uploaded yet"]})
            size = (
                len(blob.data)
                if raw_size in (None, "")
                else coerce_int(raw_size, "size", minimum=0)
            )
            if size != len(blob.data):
                raise ApiError.field(
                    "size", f"does not match the uploaded file ({len(blob.data)} bytes)"
                )
            now = self.store.now()
            blob.size = size
            blob.blob_status = "complete"
            blob.set_completed_at = now
            blob.updated_at = now
        return Response(200)

    def _download_url(self, request: Request, blob: Blob) -> str:
        url = f"{request.base_url}/blobs/{blob.uid}"
        if not blob.public and request.session is not None:
            url += f"?token={request.session.token}"
        return url

    def handle_blob_object(self, request: Request, uid: str) -> Response:
        with self.store.lock:
            blob = self._blob(uid)
            body = blob.to_json()
        url = self._download_url(request, blob)
        body["blob_object_access"] = {
            "id": blob.id,
            "blob_id": blob.id,
            "expires": iso(self.store.now() + timedelta(hours=1)),
            "object_access_type": "Read",
            "params": url,
            "download_url": url,
        }
        return Response(200, {"blob": body})

    def _check_readable(self, request: Request, blob: Blob) -> None:
        if not blob.completed or blob.data is None:
            raise ApiError(404, NOT_FOUND)
        if not blob.public and request.session is None:
            raise ApiError(401, NO_SESSION)

    def handle_blob_download(self, request: Request, uid: str) -> Response:
        with self.store.lock:
            blob = self._blob(uid)
            self._check_readable(request, blob)
        return Response(301, headers=[("Location", self._download_url(request, blob))])

    def handle_get_blob(self, request: Request, id: str) -> Response:
        """``/blobs/{id}`` is the blob's JSON; ``/blobs/{uid}`` (no ``.json``) is the file."""
        with self.store.lock:
            blob = self._blob(id)
            if id.isdigit() or request.json_suffix:
                if request.session is None:
                    raise ApiError(401, NO_SESSION)
                return Response(200, {"blob": blob.to_json()})
            self._check_readable(request, blob)
            data = blob.data or b""
            content_type = blob.content_type
        return Response(
            200,
            raw=data,
            content_type=content_type,
            headers=[("Content-Disposition", f'inline; filename="{quote(blob.name)}"')],
        )

    def handle_delete_blob(self, request: Request, id: str) -> Response:
        owner = self._current_user(request)
        with self.store.lock:
            blob = self._blob(id)
            if blob.owner_id != owner.id:
                raise ApiError(403, ["Forbidden. The blob belongs to another user."])
            self.store.delete_blob(blob)
        return Response(200)

    # -- control API ---------------------------------------------------------------------------

    def control_health(self, request: Request) -> Response:
        return Response(200, {"ok": True, "now": iso(self.store.now())})

    def control_reset(self, request: Request) -> Response:
        self.reset()
        return Response(200, {"ok": True})

    def control_state(self, request: Request) -> Response:
        return Response(200, self.state())

    def control_get_clock(self, request: Request) -> Response:
        return Response(
            200,
            {"now": iso(self.store.now()), "offset": self.store.clock_offset.total_seconds()},
        )

    def control_clock(self, request: Request) -> Response:
        advance = request.params.get("advance", 0)
        if isinstance(advance, bool) or not isinstance(advance, (int, float, str)):
            raise ApiError.field("advance", "must be a number of seconds")
        try:
            seconds = float(advance)
        except ValueError as exc:
            raise ApiError.field("advance", "must be a number of seconds") from exc
        self.store.advance_clock(seconds)
        return self.control_get_clock(request)

    def control_get_config(self, request: Request) -> Response:
        return Response(200, {"config": self.config})

    def control_config(self, request: Request) -> Response:
        return Response(200, {"config": self.configure(**request.params)})

    def control_get_faults(self, request: Request) -> Response:
        return Response(200, {"faults": [r.to_json() for r in self.faults.rules()]})

    def control_add_fault(self, request: Request) -> Response:
        rule = self.faults.add(request.params)
        return Response(201, {"fault": rule.to_json()})

    def control_clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response(200, {"faults": []})

    def control_remove_fault(self, request: Request, id: str) -> Response:
        if not self.faults.remove(int(id)):
            raise ApiError(404, NOT_FOUND)
        return Response(200, {"faults": [r.to_json() for r in self.faults.rules()]})

    def control_requests(self, request: Request) -> Response:
        counts = self.request_counts()
        return Response(200, {"total": sum(counts.values()), "routes": counts})

    def control_reset_requests(self, request: Request) -> Response:
        self.reset_counters()
        return Response(200, {"total": 0, "routes": {}})


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
