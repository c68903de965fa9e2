"""``login/``, ``logout/`` and ``session/``: the requester's ConnectyCube session.

Override hooks follow knox's style: subclass a view and replace ``get_post_response_data``,
``authenticate_credentials`` or ``find_user_by_phone``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from django_connectycube.api.base import ConnectyCubeAPIView
from django_connectycube.api.errors import error_response
from django_connectycube.api.firebase import FirebasePhoneLoginMixin
from django_connectycube.api.openapi import OpenApiResponse, extend_schema
from django_connectycube.api.serializers import ErrorSerializer, LoginSerializer, SessionSerializer
from django_connectycube.api.throttling import LoginGuard
from django_connectycube.conf import app_settings
from django_connectycube.models import CubeSession
from django_connectycube.sessions import login as sessions
from django_connectycube.sync import user_sessions
from django_connectycube.sync.secrecy import SENSITIVE_POST_PARAMETERS, hide_secrets

logger = logging.getLogger("django_connectycube")

__all__ = ["LoginView", "LogoutView", "SessionResponseMixin", "SessionView"]


class SessionResponseMixin:
    """Builds the session answer; override :meth:`get_post_response_data` to add fields."""

    def get_post_response_data(self, request: Request, row: CubeSession) -> dict[str, Any]:
        return {
            "token": row.token,
            "expires_at": row.expires_at,
            "user_id": row.cube_user_id,
            "application_id": int(app_settings.APPLICATION_ID),
            "api_url": app_settings.API_URL,
        }

    def session_response(self, request: Request, row: CubeSession) -> Response:
        # The body as is (SessionSerializer documents it): a serializer would drop the fields an
        # override adds, and it costs a page load more CPU than the rest of the view.
        response = Response(self.get_post_response_data(request, row))
        # A token must never sit in a shared or browser cache.
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response


_LOGIN_ERRORS = {
    400: OpenApiResponse(description="Invalid input (field errors)."),
    401: OpenApiResponse(ErrorSerializer, description="Not authenticated or bad credentials."),
    409: OpenApiResponse(ErrorSerializer, description="Account conflict on ConnectyCube."),
    429: OpenApiResponse(ErrorSerializer, description="Too many failed logins (Retry-After)."),
    502: OpenApiResponse(ErrorSerializer, description="ConnectyCube refused a call."),
    503: OpenApiResponse(ErrorSerializer, description="ConnectyCube unavailable (Retry-After)."),
}


@method_decorator(sensitive_post_parameters(*SENSITIVE_POST_PARAMETERS), name="dispatch")
class LoginView(FirebasePhoneLoginMixin, SessionResponseMixin, ConnectyCubeAPIView):
    """``POST login/``: the requester's ConnectyCube session (a cached valid one costs nothing).

    Who the requester is: the authenticated request's user; else ``{username, password}``
    checked by Django's ``authenticate()``; else a Firebase phone token verified by ConnectyCube
    and linked to the local user with the phone it proves (:mod:`.firebase`).
    """

    permission_classes = [AllowAny]
    invalid_credentials = _("Invalid credentials.")
    #: The guard of this request's password check, once it succeeded (sets the device cookie).
    login_guard: LoginGuard | None = None

    @extend_schema(
        request=LoginSerializer, responses={200: SessionSerializer, **_LOGIN_ERRORS}, auth=[]
    )
    @method_decorator(hide_secrets)
    def post(self, request: Request) -> Response:
        self.enforce_csrf_for_forms(request)
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("provider") == "firebase_phone":
            return self.firebase_login(request, data["firebase_phone"])
        if "username" in data:
            user = self.authenticate_credentials(request, data["username"], data["password"])
            if isinstance(user, Response):
                return user
        elif request.user and request.user.is_authenticated:
            user = request.user
        else:
            raise NotAuthenticated()
        response = self.session_response(request, sessions.get_session_for_user(user))
        if self.login_guard is not None:
            self.login_guard.remember_device(response)
        return response

    # -- credentials -----------------------------------------------------------------------

    @staticmethod
    def enforce_csrf_for_forms(request: Request) -> None:
        """Refuse (403) a body a cross-site page could have sent unless it carries the CSRF
        token: any page can submit a form here, and a login it makes would give the victim's
        browser the attacker's device cookie. JSON needs no token, since no browser sends it
        to another site unless that site's CORS policy allows it."""
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if media_type and media_type != "application/json":
            SessionAuthentication().enforce_csrf(request)

    @method_decorator(hide_secrets)
    def authenticate_credentials(self, request: Request, username: str, password: str) -> Any:
        """The user for these credentials, or an error response (401, or 429 while this account
        or address must wait); see :mod:`.lockout` for the policy."""
        guard = LoginGuard(request, username)
        wait = guard.reserve()
        if wait is not None:
            return self.locked_response(wait)
        user_model = get_user_model()
        credentials = {user_model.USERNAME_FIELD: username, "password": password}
        try:
            user = authenticate(request._request, **credentials)
        except BaseException:
            guard.cancel()
            raise
        if user is None or not getattr(user, "is_active", True):
            guard.failed()
            return error_response(self.invalid_credentials, "invalid_credentials", 401)
        guard.succeeded()
        self.login_guard = guard
        return user

    @staticmethod
    def locked_response(retry_after: int) -> Response:
        return error_response(
            _("Too many failed login attempts; try again in %(seconds)d s.")
            % {"seconds": retry_after},
            "login_locked",
            status.HTTP_429_TOO_MANY_REQUESTS,
            Retry_After=str(retry_after),
        )


class LogoutView(ConnectyCubeAPIView):
    """``POST logout/``: end the requester's ConnectyCube session and forget its token."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="Logged out (also when there was no session)."),
            401: OpenApiResponse(ErrorSerializer),
            503: OpenApiResponse(ErrorSerializer),
        },
    )
    def post(self, request: Request) -> Response:
        user_sessions.destroy_session(request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionQuerySerializer(serializers.Serializer):
    """``GET session/`` options; with neither, the stored token is handed out as is."""

    renew = serializers.BooleanField(
        required=False, help_text="ConnectyCube refused the token: make a new one."
    )
    confirm = serializers.BooleanField(
        required=False, help_text="Check the token with ConnectyCube first (one remote call)."
    )


_SESSION_ERRORS = {
    401: OpenApiResponse(ErrorSerializer),
    409: OpenApiResponse(ErrorSerializer),
    502: OpenApiResponse(ErrorSerializer),
    503: OpenApiResponse(ErrorSerializer),
}


class SessionView(SessionResponseMixin, ConnectyCubeAPIView):
    """``GET session/``: the requester's session; ``POST session/``: a new one.

    A page asks on every load, so a stored token that is still valid by its recorded expiry is
    handed out with one read: no remote call, no write. ConnectyCube may drop a token before
    that (a restart, a logout elsewhere); the SDK then calls its ``sessionExpired`` hook, which
    reports it here with ``POST`` (or ``?renew=1``) and gets a new token. ``?confirm=1`` checks
    the token with ConnectyCube first and slides its recorded expiry.
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[SessionQuerySerializer],
        responses={
            200: SessionSerializer,
            400: OpenApiResponse(ErrorSerializer),
            **_SESSION_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        if not request.query_params:
            return self.session_response(request, sessions.get_session_for_user(request.user))
        options = SessionQuerySerializer(data=request.query_params)
        options.is_valid(raise_exception=True)
        if options.validated_data.get("renew"):
            row = sessions.renew_session(request.user)
        elif options.validated_data.get("confirm"):
            row = sessions.refresh_session(request.user)
        else:
            row = sessions.get_session_for_user(request.user)
        return self.session_response(request, row)

    @extend_schema(request=None, responses={200: SessionSerializer, **_SESSION_ERRORS})
    def post(self, request: Request) -> Response:
        return self.session_response(request, sessions.renew_session(request.user))
