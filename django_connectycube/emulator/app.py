"""The emulator's WSGI application: configuration, routing, authentication, test helpers.

Plain WSGI on purpose: it runs under cheroot (:mod:`.server`) or any WSGI server or test
client, and it imports nothing from Django, so the emulator works in any Python process (a CI
job, a Node SDK check, a benchmark) without settings. The handlers live in one module per resource
(:mod:`.auth_api`, :mod:`.users_api`, :mod:`.blobs_api`, :mod:`.control_api`), combined here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

from .admin_api import AdminHandlers
from .auth_api import AuthHandlers
from .base import NEED_USER, NO_SESSION, NOT_FOUND, TOKEN_REQUIRED
from .blobs_api import BlobHandlers
from .config import CONFIG_KEYS, coerce_setting
from .control_access import ControlAccess, fetch_url_problem
from .control_api import ControlHandlers
from .cors import CORS_HEADERS, preflight
from .dates import expiry_header, http_date
from .faults import FaultRule, FaultSet, route_matches
from .identity import DEFAULT_CIDP_FAILURE_STYLE, FirebaseVerifier, HmacFirebaseVerifier
from .lookups_api import LookupHandlers
from .routes import CONTROL_PREFIX, CONTROL_ROUTES, ROUTES
from .store import Store
from .switches import SWITCH_DEFAULTS
from .transport import Request, Response
from .users_api import UserHandlers
from .wire import ApiError, DropConnection

__all__ = ["Emulator"]

logger = logging.getLogger("django_connectycube.emulator")

_REASONS = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
_FAULT_MESSAGES = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Emulator(
    AuthHandlers, UserHandlers, LookupHandlers, BlobHandlers, AdminHandlers, ControlHandlers
):
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
        *,
        cidp_failure_style: str = DEFAULT_CIDP_FAILURE_STYLE,
        v1_users_api: bool = SWITCH_DEFAULTS["v1_users_api"],
        allow_users_list: bool = SWITCH_DEFAULTS["allow_users_list"],
        allow_other_user_info: bool = SWITCH_DEFAULTS["allow_other_user_info"],
        require_email_confirmation: bool = SWITCH_DEFAULTS["require_email_confirmation"],
        online_users_api: bool = SWITCH_DEFAULTS["online_users_api"],
        admin_api_key: str | None = SWITCH_DEFAULTS["admin_api_key"],
        state_file: str | os.PathLike[str] | None = None,
        control_token: str | None = None,
        control_hosts: Iterable[str] = (),
        allow_remote_cidp: bool = False,
    ) -> None:
        """``cidp_failure_style`` is how a refused CIdP verification is answered
        (:mod:`.identity`); the keyword arguments after it are the dashboard switches
        (:mod:`.switches`); ``state_file``, a SQLite file that keeps users, sessions and blobs
        across restarts (:mod:`.persistence`; created when missing); ``control_token`` and
        ``control_hosts``, who may use the control API (:mod:`.control_access`);
        ``allow_remote_cidp``, whether ``cidp_url`` may leave this machine (the emulator fetches
        it, so by default only loopback URLs are taken, from here or the control API).
        """
        given = {
            "application_id": application_id,
            "auth_key": auth_key,
            "auth_secret": auth_secret,
            "require_signature": require_signature,
            "cidp_url": cidp_url,
            "cidp_response_mapping": cidp_response_mapping,
            "cidp_failure_style": cidp_failure_style,
            "deny_auto_create": deny_auto_create,
            "firebase_key": firebase_key,
            "v1_users_api": v1_users_api,
            "allow_users_list": allow_users_list,
            "allow_other_user_info": allow_other_user_info,
            "require_email_confirmation": require_email_confirmation,
            "online_users_api": online_users_api,
            "admin_api_key": admin_api_key,
        }
        self.allow_remote_cidp = bool(allow_remote_cidp)
        self._initial_config = self._checked(
            {key: coerce_setting(key, value) for key, value in given.items()}
        )
        self._custom_firebase_verifier = firebase_verifier
        self.control_access = ControlAccess(control_token, control_hosts)
        self.store = Store(state_file)
        self.faults = FaultSet()
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        #: Set by :class:`EmulatorServer` once it listens; ``None`` when not served.
        self.url: str | None = None
        self._apply_config(self._initial_config)

    # -- configuration -------------------------------------------------------------------------

    def _apply_config(self, config: Mapping[str, Any]) -> None:
        for key in CONFIG_KEYS:
            setattr(self, key, config[key])
        self.firebase_verifier = self._custom_firebase_verifier or HmacFirebaseVerifier(
            self.firebase_key
        )

    def _checked(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config``, once its ``cidp_url`` is one the emulator may fetch (422 otherwise)."""
        url = config["cidp_url"]
        problem = None if url is None else fetch_url_problem(url, self.allow_remote_cidp)
        if problem is not None:
            raise ApiError.field("cidp_url", problem)
        return config

    @property
    def config(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in CONFIG_KEYS}

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings at run time (a shared test server can't be restarted per test).

        Keys are those of :attr:`config`, including the dashboard switches of
        :mod:`~django_connectycube.emulator.switches`; ``reset()`` restores the values the
        emulator was created with.
        """
        unknown = set(changes) - set(CONFIG_KEYS)
        if unknown:
            raise ApiError(422, [f"Unknown setting(s): {', '.join(sorted(unknown))}"])
        config = self.config
        config.update({key: coerce_setting(key, value) for key, value in changes.items()})
        self._checked(config)
        with self.store.lock:
            self._apply_config(config)
        return self.config

    # -- Python-side helpers for tests ---------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: state (the state file's too), clock offset, faults, counters and
        run-time configuration."""
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
        with self.store.lock:
            user = self.store.create_user(fields, source="seed")
            self.store.commit()
            return user.to_json()

    def create_session(self, user_id: int | None = None) -> str:
        """Seed a session token (an application session when ``user_id`` is ``None``)."""
        with self.store.lock:
            user = None
            if user_id is not None:
                user = self.store.users.get(user_id)
                if user is None:
                    raise KeyError(f"no user with id {user_id}")
            token = self.store.create_session(self.application_id, user).token
            self.store.commit()
            return token

    def close(self) -> None:
        """Save and close the state file, if any (the server calls this when it stops)."""
        self.store.close()

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
        if raw_path.startswith(CONTROL_PREFIX):
            response = self._dispatch_control(environ, method, raw_path)
            headers = response.headers + self.control_access.cors_headers(environ)
        else:
            if method == "OPTIONS":
                response = preflight(environ)
            else:
                response = self._dispatch(environ, method, raw_path)
            headers = response.headers + CORS_HEADERS
        headers.append(("Content-Length", str(len(response.body))))
        if self.store.clock_offset:
            # A real server's Date follows its own clock; clients correct expiry and signature
            # timestamps by it, so an advanced clock must show here too.
            headers.append(("Date", http_date(self.now())))
        start_response(_REASONS.get(response.status, f"{response.status} Unknown"), headers)
        return [] if method == "HEAD" else [response.body]

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
        for candidate in ROUTES.get(segments[0], ()):
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
        finally:
            self.store.commit()
        session = request.session
        if session is not None and session.token in self.store.sessions:
            response.headers.append(("CB-Token-ExpirationDate", expiry_header(session.expires_at)))
        return response

    def _dispatch_control(self, environ: dict[str, Any], method: str, raw_path: str) -> Response:
        refusal = self.control_access.refusal(environ)
        if refusal is not None:
            return self._error(ApiError(403, [refusal]))
        if method == "OPTIONS":  # a local page's preflight: cors_headers() answers it
            return Response(204)
        segments = raw_path.rstrip("/").strip("/").split("/")
        for route in CONTROL_ROUTES.get(segments[0], ()):
            captured = route.match(segments) if route.method == method else None
            if captured is None:
                continue
            request = Request(environ, method, raw_path, False)
            try:
                with self.store.lock:  # commit what the control call changed (reset, seeds)
                    response = getattr(self, route.handler)(request, **captured)
                    self.store.commit()
                return response
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
        request.token_given = bool(token)
        if not token:
            if mode == "optional":
                return
            if mode == "signup" and request.header("CB-AuthKey") is not None:
                if request.header("CB-AuthKey") != self.auth_key:
                    raise ApiError(401, ["Unexpected auth key"])
                return
            raise ApiError(401, TOKEN_REQUIRED)
        session = self.store.touch_session(token)
        if session is None:
            if mode == "optional":  # a stale ?token= must not hide a public file
                return
            raise ApiError(401, NO_SESSION)
        request.session = session
        if mode == "user" and session.user_id is None:
            raise NEED_USER


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
