"""Sessions and logins: ``POST/GET/DELETE /session``, ``POST/DELETE /login``.

Also how credentials become a user (password, guest, Custom Identity Provider, Firebase) and the
optional HMAC signature of ``POST /session``; both session routes share them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from .email_confirmation import EmailConfirmation
from .identity import CIDP_FAILURE_STYLES, DEFAULT_CIDP_MAPPING, call_cidp
from .models import SIGNATURE_WINDOW, User
from .signature import signature_matches
from .transport import Request, Response
from .wire import BLANK, ApiError, coerce_int, coerce_str, require_mapping

__all__ = ["AuthHandlers"]


class AuthHandlers(EmailConfirmation):
    """Handlers of the session routes, and identity resolution."""

    # -- identities (shared by POST /session and POST /login) ----------------------------------

    def _identify(
        self,
        request: Request,
        credentials: Mapping[str, Any],
        provider_params: Mapping[str, Any],
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
            raise ApiError(422, {"login": [BLANK]})
        login = None if login in (None, "") else coerce_str(login, "login")
        email = None if email in (None, "") else coerce_str(email, "email")
        # A missing or blank password is refused before anything else, a CIdP login included
        # [O js-sdk-releases#69]; that whitespace counts as blank is inferred.
        if password is None or (isinstance(password, str) and not password.strip()):
            raise ApiError(422, {"password": [BLANK]})
        password = coerce_str(password, "password")
        if self.cidp_url and login is not None:
            with self.store.lock:
                local = self.store.user_by_login(login)
                local_has_password = local is not None and local.password_hash is not None
            if not local_has_password:
                return self._identify_cidp(login)
        with self.store.lock:
            user = (
                self.store.user_by_login(login) if login else self.store.user_by_email(email or "")
            )
            if user is not None:
                if not user.check_password(password):
                    raise ApiError(401, ["Invalid password"])
                self._check_email_confirmed(user)
                return user
            if self.deny_auto_create:
                raise ApiError(404, ["User not found"])
            fields = {"password": password}
            if login:
                fields["login"] = login
            if email:
                fields["email"] = email
            user = self._register(request, fields, source="auto")
            self._check_email_confirmed(user)
            return user

    def _identify_cidp(self, token: str) -> User:
        assert self.cidp_url is not None
        fields = call_cidp(
            self.cidp_url,
            token,
            self.cidp_response_mapping or DEFAULT_CIDP_MAPPING,
            CIDP_FAILURE_STYLES[self.cidp_failure_style],
        )
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
            raise ApiError.field(f"{provider}[project_id]", BLANK)
        if access_token in (None, ""):
            raise ApiError.field(f"{provider}[access_token]", BLANK)
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
            raise ApiError.field("nonce", BLANK)
        if timestamp in (None, ""):
            raise ApiError.field("timestamp", BLANK)
        moment = coerce_int(timestamp, "timestamp")
        if abs(self.store.now().timestamp() - moment) > SIGNATURE_WINDOW.total_seconds():
            raise ApiError.field("timestamp", "invalid timestamp")
        if not signature_matches(params, self.auth_secret):
            raise ApiError(422, ["Unexpected signature"])
        if not self.store.use_nonce(str(nonce), str(timestamp)):
            raise ApiError.field("nonce", "has already been used with this timestamp")

    # -- sessions ------------------------------------------------------------------------------

    def handle_create_session(self, request: Request) -> Response:
        params = request.params
        for name in ("application_id", "auth_key"):
            if params.get(name) in (None, ""):
                raise ApiError.field(name, BLANK)
        if coerce_int(params["application_id"], "application_id") != self.application_id:
            raise ApiError(422, ["Unknown application"])
        if params["auth_key"] != self.auth_key:
            raise ApiError(422, ["Unexpected auth key"])
        self._check_signature(params)
        # The session body carries both as integers, whatever type the client sent [O].
        nonce, ts = (
            None if params.get(name) in (None, "") else coerce_int(params[name], name)
            for name in ("nonce", "timestamp")
        )
        credentials = require_mapping(params.get("user"), "user")
        user = self._identify(request, credentials, params)
        session = self.store.create_session(self.application_id, user, nonce=nonce, ts=ts)
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
        user = self._identify(request, params, params)
        if user is None:
            raise ApiError(422, {"login": [BLANK]})
        assert request.session is not None
        self.store.bind_session(request.session, user)
        return Response(200, {"user": user.to_json()})

    def handle_logout(self, request: Request) -> Response:
        assert request.session is not None
        self.store.bind_session(request.session, None)
        return Response(200)
