"""The REST API a frontend calls: a ConnectyCube session for the logged-in user, user look-ups,
password reset.

Every view answers errors as ``{"detail": ..., "code": ...}``. ConnectyCube being slow, down or
rate limiting never turns into a 500: it is a 503 with ``Retry-After`` and the code
``connectycube_unavailable``; an account the sync cannot set up without an operator (a recorded
conflict, a dead letter) is a 409 ``connectycube_conflict``. Tokens appear only in the answers of
the login and session views, and only the requester's own.

Override hooks follow knox's style: subclass a view and replace ``get_post_response_data``,
``authenticate_credentials``, ``find_user_by_phone`` or ``send_reset``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.db import IntegrityError, transaction
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, NotAuthenticated
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from .. import firebase, sessions
from ..client import (
    APIError,
    ConnectyCubeClient,
    ConnectyCubeError,
    NotFound,
    Page,
    Session,
    User,
    ValidationError,
)
from ..conf import ConfigurationError, app_settings
from ..failures import SyncConflict
from ..models import CubeSession, CubeUser
from ..remote import get_client
from .openapi import OpenApiResponse, extend_schema
from .serializers import (
    ErrorSerializer,
    LoginSerializer,
    PasswordResetSerializer,
    ProfilePageSerializer,
    ProfileSerializer,
    SessionSerializer,
    UserQuerySerializer,
)
from .throttling import LoginGuard

logger = logging.getLogger("django_connectycube")

__all__ = [
    "ConnectyCubeAPIView",
    "LoginView",
    "LogoutView",
    "PasswordResetView",
    "SessionView",
    "UserDetailView",
    "UserListView",
]

UNAVAILABLE = "connectycube_unavailable"
CONFLICT = "connectycube_conflict"


def _error(detail: Any, code: str, status_code: int, **headers: str) -> Response:
    response = Response({"detail": str(detail), "code": code}, status=status_code)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class ConnectyCubeAPIView(APIView):
    """Base view: permissions and throttles from settings, remote failures as 503/502."""

    #: ``None``: take ``API_PERMISSION_CLASSES`` from settings; views that must stay open
    #: (login, password reset) set their own.
    connectycube_permission_classes: list[type[BasePermission]] | None = None

    def get_permissions(self) -> list[BasePermission]:
        classes = self.connectycube_permission_classes
        if classes is None:
            classes = [
                _import(p, "API_PERMISSION_CLASSES") for p in _paths("API_PERMISSION_CLASSES")
            ]
        return [cls() for cls in classes]

    def get_throttles(self) -> list[BaseThrottle]:
        return [_import(p, "API_THROTTLE_CLASSES")() for p in _paths("API_THROTTLE_CLASSES")]

    def handle_exception(self, exc: Exception) -> Response:
        if sessions.is_transient(exc):
            logger.warning("ConnectyCube unavailable during %s: %s", self.request.path, exc)
            retry = str(sessions.retry_after_for(exc))
            return _error(
                _("ConnectyCube is unavailable right now; try again later."),
                UNAVAILABLE,
                status.HTTP_503_SERVICE_UNAVAILABLE,
                Retry_After=retry,
            )
        if isinstance(exc, SyncConflict):
            logger.error("ConnectyCube conflict during %s: %s", self.request.path, exc)
            return _error(
                _(
                    "This account could not be set up on ConnectyCube (it conflicts with data "
                    "there); an administrator has to resolve it."
                ),
                CONFLICT,
                status.HTTP_409_CONFLICT,
            )
        if isinstance(exc, ConnectyCubeError):
            logger.error("ConnectyCube refused a call during %s: %s", self.request.path, exc)
            return _error(
                _("ConnectyCube refused the request."),
                "connectycube_error",
                status.HTTP_502_BAD_GATEWAY,
            )
        response = super().handle_exception(exc)
        if (
            isinstance(exc, APIException)
            and isinstance(response.data, dict)
            and set(response.data) == {"detail"}
        ):
            codes = exc.get_codes()
            response.data["code"] = codes if isinstance(codes, str) else "error"
        return response


def _paths(name: str) -> list[Any]:
    value = getattr(app_settings, name)
    if isinstance(value, str):
        value = [value]
    return list(value or [])


def _import(path: Any, setting: str) -> Any:
    if not isinstance(path, str):
        return path
    try:
        return import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f'CONNECTYCUBE["{setting}"]: cannot import {path!r}: {exc}'
        ) from exc


# ---- sessions --------------------------------------------------------------------------------


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
        data = SessionSerializer(self.get_post_response_data(request, row)).data
        response = Response(data)
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


class LoginView(SessionResponseMixin, ConnectyCubeAPIView):
    """``POST login/``: the requester's ConnectyCube session (a cached valid one costs nothing).

    Who the requester is: the authenticated request's user; else ``{username, password}``
    checked by Django's ``authenticate()``; else a Firebase phone token verified by ConnectyCube
    and linked to the local user with that phone.
    """

    connectycube_permission_classes = [AllowAny]
    invalid_credentials = _("Invalid credentials.")

    @extend_schema(
        request=LoginSerializer, responses={200: SessionSerializer, **_LOGIN_ERRORS}, auth=[]
    )
    def post(self, request: Request) -> Response:
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
        return self.session_response(request, sessions.get_session_for_user(user))

    # -- credentials -----------------------------------------------------------------------

    def authenticate_credentials(self, request: Request, username: str, password: str) -> Any:
        """The user for these credentials, or an error response (401, or 429 when locked)."""
        guard = LoginGuard(request, username)
        locked = guard.retry_after()
        if locked is not None:
            return self.locked_response(locked)
        user_model = get_user_model()
        credentials = {user_model.USERNAME_FIELD: username, "password": password}
        user = authenticate(request._request, **credentials)
        if user is None or not getattr(user, "is_active", True):
            guard.record_failure()
            return _error(self.invalid_credentials, "invalid_credentials", 401)
        guard.reset_account()
        return user

    @staticmethod
    def locked_response(retry_after: int) -> Response:
        return _error(
            _("Too many failed login attempts; try again later."),
            "login_locked",
            status.HTTP_429_TOO_MANY_REQUESTS,
            Retry_After=str(retry_after),
        )

    # -- Firebase phone --------------------------------------------------------------------

    def firebase_login(self, request: Request, params: dict[str, Any]) -> Response:
        """Verify a Firebase phone token with ConnectyCube and log in the local user it names."""
        if not self.firebase_phone_enabled():
            return _error(
                _("Firebase phone login is not enabled on this site."),
                "firebase_phone_disabled",
                status.HTTP_403_FORBIDDEN,
            )
        configured = app_settings.FIREBASE_PROJECT_ID
        project_id = params.get("project_id") or configured
        if not project_id:
            return Response(
                {"firebase_phone": {"project_id": [str(_("This field is required."))]}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        guard = LoginGuard(request, None)
        locked = guard.retry_after()
        if locked is not None:
            return self.locked_response(locked)
        if configured and str(project_id) != str(configured):
            guard.record_failure()
            return _error(self.invalid_credentials, "invalid_credentials", 401)
        client = get_client()
        try:
            remote = client.create_firebase_phone_session(str(project_id), params["access_token"])
        except APIError as exc:
            if sessions.is_transient(exc):
                raise
            guard.record_failure()
            return _error(self.invalid_credentials, "invalid_credentials", 401)
        phone = remote.user.phone if remote.user is not None else None
        user = self.find_user_by_phone(phone) if phone else None
        if user is None and phone and app_settings.FIREBASE_CREATE_USERS:
            user = self.create_user_for_phone(phone)
        if user is None or not getattr(user, "is_active", True):
            self._discard(client, remote)
            return _error(
                _("No account is linked to this phone number."),
                "phone_not_linked",
                status.HTTP_400_BAD_REQUEST,
            )
        link = CubeUser.objects.filter(user_id=user.pk).first()
        if link is not None and link.cube_id is not None and link.cube_id == remote.user_id:
            row = sessions.store_session(user, remote)
        else:
            # ConnectyCube's Firebase user is not this user's mirrored identity: the phone is
            # proven, so hand out the mirrored identity's session and drop the other one.
            self._discard(client, remote)
            row = sessions.get_session_for_user(user)
        return self.session_response(request, row)

    @staticmethod
    def _discard(client: ConnectyCubeClient, remote: Session) -> None:
        with contextlib.suppress(ConnectyCubeError):
            client.destroy_session(remote.token)

    def firebase_phone_enabled(self) -> bool:
        """Whether phones may find local users: a subclass's own ``find_user_by_phone`` vouches
        for itself; else ``FIREBASE_PHONE_LOOKUP`` must name a verified source."""
        if type(self).find_user_by_phone is not LoginView.find_user_by_phone:
            return True
        try:
            return firebase.phone_lookup() is not None  # None: switched off
        except ConfigurationError as exc:
            logger.error("Firebase phone login refused: %s", exc)
            return False

    def find_user_by_phone(self, phone: str) -> Any:
        """The one active local user with this verified phone, else None.

        Only ever asks the source ``FIREBASE_PHONE_LOOKUP`` names and the integrator vouched
        for (see :mod:`django_connectycube.firebase`), never a plain profile field.
        """
        lookup = firebase.phone_lookup()
        if lookup is None:
            return None
        if callable(lookup):
            return lookup(phone)
        matches = list(get_user_model()._default_manager.filter(**{lookup: phone})[:2])
        return matches[0] if len(matches) == 1 else None

    def create_user_for_phone(self, phone: str) -> Any:
        """A new local user for a verified phone (``FIREBASE_CREATE_USERS``); no password."""
        user_model = get_user_model()
        lookup = firebase.phone_lookup()
        digits = "".join(ch for ch in phone if ch.isdigit()) or get_random_string(8)
        for attempt in range(5):
            suffix = "" if attempt == 0 else "_" + get_random_string(4).lower()
            fields = {user_model.USERNAME_FIELD: f"phone_{digits}{suffix}"}
            if isinstance(lookup, str):  # a verified field: the number was just proven
                fields[lookup] = phone
            try:
                with transaction.atomic():
                    user = user_model._default_manager.create_user(**fields)
            except IntegrityError:
                continue
            return user
        return None


class LogoutView(ConnectyCubeAPIView):
    """``POST logout/``: end the requester's ConnectyCube session and forget its token."""

    connectycube_permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="Logged out (also when there was no session)."),
            401: OpenApiResponse(ErrorSerializer),
            503: OpenApiResponse(ErrorSerializer),
        },
    )
    def post(self, request: Request) -> Response:
        sessions.destroy_session(request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionView(SessionResponseMixin, ConnectyCubeAPIView):
    """``GET session/``: the requester's session, confirmed with ConnectyCube and renewed if
    ConnectyCube no longer knows it."""

    connectycube_permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={
            200: SessionSerializer,
            401: OpenApiResponse(ErrorSerializer),
            409: OpenApiResponse(ErrorSerializer),
            502: OpenApiResponse(ErrorSerializer),
            503: OpenApiResponse(ErrorSerializer),
        }
    )
    def get(self, request: Request) -> Response:
        return self.session_response(request, sessions.refresh_session(request.user))


# ---- users -----------------------------------------------------------------------------------


class ProfileMixin:
    """Serializes ConnectyCube users as public profiles for this request's user."""

    request: Request

    def profile_context(self) -> dict[str, Any]:
        user = self.request.user
        own = None
        if user is not None and user.is_authenticated:
            own = CubeUser.objects.filter(user_id=user.pk).values_list("cube_id", flat=True).first()
        return {
            "api_url": app_settings.API_URL,
            "own_cube_id": own,
            "expose_contact": bool(app_settings.API_EXPOSE_CONTACT_FIELDS),
        }


class UserListView(ProfileMixin, ConnectyCubeAPIView):
    """``GET users/``: public profiles matching exactly one filter, one page at a time."""

    @extend_schema(
        operation_id="connectycube_users_list",
        parameters=[UserQuerySerializer],
        responses={
            200: ProfilePageSerializer,
            400: OpenApiResponse(description="Invalid or missing filter (field errors)."),
            401: OpenApiResponse(ErrorSerializer),
            503: OpenApiResponse(ErrorSerializer),
        },
    )
    def get(self, request: Request) -> Response:
        query = UserQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = self.fetch(get_client(), params)
        profiles = ProfileSerializer(page.items, many=True, context=self.profile_context()).data
        number, per_page = params["page"], params["per_page"]
        url = request.build_absolute_uri()
        has_next = number * per_page < page.total
        return Response(
            {
                "count": page.total,
                "next": replace_query_param(url, "page", number + 1) if has_next else None,
                "previous": replace_query_param(url, "page", number - 1) if number > 1 else None,
                "results": profiles,
            }
        )

    def fetch(self, client: ConnectyCubeClient, params: dict[str, Any]) -> Page[User]:
        """One page of ConnectyCube users for the validated query (app session: read-only)."""
        name = params["filter"]
        value = params[name]
        number, per_page = params["page"], params["per_page"]
        ordering: str = params["ordering"]
        descending, field = ordering.startswith("-"), ordering.lstrip("-")
        sort = {"order_by": field, "descending": descending}
        if name == "ids":
            return client.get_users_by_ids(value, page=number, per_page=per_page, **sort)
        if name == "full_name":
            return client.get_users_by_full_name(value, page=number, per_page=per_page, **sort)
        if name == "tags":
            return client.get_users_by_tags(value, page=number, per_page=per_page, **sort)
        # login, email, phone, external_id: one v2 query, paged like the others.
        return client.search_users(
            offset=(number - 1) * per_page,
            limit=per_page,
            **{"sort_desc" if descending else "sort_asc": field, name: value},
        )


class UserDetailView(ProfileMixin, ConnectyCubeAPIView):
    """``GET users/<id>/``: one public profile."""

    @extend_schema(
        operation_id="connectycube_users_retrieve",
        responses={
            200: ProfileSerializer,
            401: OpenApiResponse(ErrorSerializer),
            404: OpenApiResponse(ErrorSerializer),
            503: OpenApiResponse(ErrorSerializer),
        },
    )
    def get(self, request: Request, user_id: int) -> Response:
        try:
            user = get_client().get_user(user_id)
        except (NotFound, ValidationError):
            # A 422 on a look-up by id can only mean ConnectyCube takes no such id: no such user.
            return _error(_("Not found."), "not_found", status.HTTP_404_NOT_FOUND)
        return Response(ProfileSerializer(user, context=self.profile_context()).data)


# ---- password reset --------------------------------------------------------------------------


class PasswordResetView(ConnectyCubeAPIView):
    """``POST password-reset/``: one answer for every address, so it reveals none.

    A local account gets Django's own reset e-mail (its ConnectyCube password is derived, so
    resetting the Django password is all there is to do); an address only ConnectyCube knows
    gets ConnectyCube's reset e-mail. Failures are logged, never shown, and the answer is held
    back to ``PASSWORD_RESET_MIN_SECONDS`` so both paths take about as long.
    """

    connectycube_permission_classes = [AllowAny]
    answer = {
        "detail": _("If this address belongs to an account, a reset e-mail is on its way."),
        "code": "password_reset_requested",
    }

    @extend_schema(
        request=PasswordResetSerializer,
        responses={202: ErrorSerializer, 400: OpenApiResponse(description="Invalid e-mail.")},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        started = time.monotonic()
        serializer = PasswordResetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"]
        try:
            self.send_reset(request, email)
        except Exception:  # anything shown here would tell known from unknown addresses
            logger.exception("Password reset e-mail could not be sent")
        remaining = float(app_settings.PASSWORD_RESET_MIN_SECONDS) - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
        return Response(
            {k: str(v) for k, v in self.answer.items()}, status=status.HTTP_202_ACCEPTED
        )

    def send_reset(self, request: Request, email: str) -> None:
        """Send the right reset e-mail for this address, if any."""
        user_model = get_user_model()
        email_field = user_model.get_email_field_name()
        local = user_model._default_manager.filter(**{f"{email_field}__iexact": email}).exists()
        if local:
            form = PasswordResetForm({"email": email})
            if form.is_valid():
                options = dict(app_settings.PASSWORD_RESET_OPTIONS or {})
                form.save(request=request._request, **options)
            return
        get_client().reset_password(email)
