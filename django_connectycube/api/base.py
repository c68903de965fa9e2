"""The base view of the API: permissions and throttles defaulting to settings, failures as
JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import signals
from django.utils.log import log_response
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from django_connectycube.api.errors import CONFLICT, UNAVAILABLE, error_response, input_refusal
from django_connectycube.api.parsers import JSONParser
from django_connectycube.client import ConnectyCubeError, IdentityProviderRefused
from django_connectycube.conf import ConfigurationError, app_settings
from django_connectycube.errors import SyncConflict
from django_connectycube.sync import policy

logger = logging.getLogger("django_connectycube")

#: ConnectyCube quotes the verifier's whole answer (a stack trace, a page); the log keeps it all.
CIDP_DETAIL_LENGTH = 500

__all__ = ["ConnectyCubeAPIView", "SettingsDefault", "import_setting", "setting_paths"]


class SettingsDefault:
    """A DRF ``*_classes`` attribute read from settings on every access.

    It is a plain (non-data) descriptor, so a subclass or mixin that assigns the attribute
    shadows it through ordinary attribute lookup, exactly as DRF expects: what a view sets wins,
    settings only fill the default. Read per access, so ``override_settings`` takes effect.
    """

    def __init__(self, resolve: Callable[[type[Any]], list[type[Any]]]) -> None:
        self.resolve = resolve

    def __get__(self, instance: object, owner: type[Any]) -> list[type[Any]]:
        return self.resolve(owner)


def _configured_permissions(view_class: type[Any]) -> list[type[BasePermission]]:
    return [
        import_setting(p, "API_PERMISSION_CLASSES") for p in setting_paths("API_PERMISSION_CLASSES")
    ]


def _configured_throttles(view_class: type[Any]) -> list[type[BaseThrottle]]:
    return [*view_class.connectycube_throttle_classes, *api_settings.DEFAULT_THROTTLE_CLASSES]


class ConnectyCubeAPIView(APIView):
    """Base view: permissions and throttles from settings unless the view sets its own, remote
    failures as 503/502, a recorded sync conflict as 409, input past Django's limits as 413/400."""

    #: DRF's default parsers, with a JSON parser that refuses nesting too deep to decode.
    parser_classes: list[type[BaseParser]] = [JSONParser, FormParser, MultiPartParser]

    #: ``API_PERMISSION_CLASSES`` unless a view (ours: login, password reset) or an integrator's
    #: subclass sets ``permission_classes`` itself.
    permission_classes = SettingsDefault(_configured_permissions)
    #: This view's own throttles followed by DRF's ``DEFAULT_THROTTLE_CLASSES`` (the project's
    #: throttles for every DRF view), unless a subclass sets ``throttle_classes`` itself.
    throttle_classes = SettingsDefault(_configured_throttles)
    #: The view's built-in throttles, kept beside DRF's defaults in the default; their
    #: rates come from ``API_THROTTLE_RATES`` (a rate of ``None`` turns one off).
    connectycube_throttle_classes: list[type[BaseThrottle]] = []

    def handle_exception(self, exc: Exception) -> Response:
        refused = input_refusal(exc)
        if refused is not None:  # raised reading the body or the query string, whichever first
            return error_response(*refused)
        if policy.unavailable(exc):
            logger.warning("ConnectyCube unavailable during %s: %s", self.request.path, exc)
            retry = str(policy.retry_after(exc))
            return error_response(
                _("ConnectyCube is unavailable right now; try again later."),
                UNAVAILABLE,
                status.HTTP_503_SERVICE_UNAVAILABLE,
                Retry_After=retry,
            )
        if isinstance(exc, SyncConflict):
            logger.error("ConnectyCube conflict during %s: %s", self.request.path, exc)
            return error_response(
                _(
                    "This account could not be set up on ConnectyCube (it conflicts with data "
                    "there); an administrator has to resolve it."
                ),
                CONFLICT,
                status.HTTP_409_CONFLICT,
            )
        if isinstance(exc, IdentityProviderRefused):
            # This site's own verifier (or its set-up in the dashboard) failed the user, who
            # can do nothing about it: a bad gateway, in ConnectyCube's words.
            logger.error("ConnectyCube refused a CIdP login during %s: %s", self.request.path, exc)
            return error_response(
                _("ConnectyCube refused the login through this site's identity provider: %s")
                % "; ".join(exc.messages)[:CIDP_DETAIL_LENGTH],
                "cidp_refused",
                status.HTTP_502_BAD_GATEWAY,
            )
        if isinstance(exc, ConnectyCubeError):
            logger.error("ConnectyCube refused a call during %s: %s", self.request.path, exc)
            return error_response(
                _("ConnectyCube refused the request."),
                "connectycube_error",
                status.HTTP_502_BAD_GATEWAY,
            )
        try:
            response = super().handle_exception(exc)
        except Exception as raised:
            if raised is not exc:
                raise
            return self.server_error_response(exc)
        if (
            isinstance(exc, APIException)
            and isinstance(response.data, dict)
            and set(response.data) == {"detail"}
        ):
            codes = exc.get_codes()
            response.data["code"] = codes if isinstance(codes, str) else "error"
        return response

    def server_error_response(self, exc: Exception) -> Response:
        """A bug: reported the way Django reports one (``got_request_exception`` for error
        trackers, the ``django.request`` logger for ``ADMINS`` mail), answered as JSON.

        Never Django's HTML error page, not even with ``DEBUG`` on: that page lists every local
        variable of every frame, and Django filters none of them while ``DEBUG`` is on.
        """
        request = self.request._request if self.request is not None else None
        signals.got_request_exception.send(sender=type(self), request=request)
        response = error_response(
            _("Internal server error."), "server_error", status.HTTP_500_INTERNAL_SERVER_ERROR
        )
        log_response(
            "Internal Server Error: %s",
            getattr(request, "path", "?"),
            response=response,
            request=request,
            exception=exc,
        )
        return response

    def get_authenticate_header(self, request: Request) -> str | None:  # type: ignore[override]
        """The challenge of a 401, so an unauthenticated call is a 401, not DRF's 403.

        DRF answers 401 only when the *first* authentication class offers a challenge, and
        ``SessionAuthentication`` offers none. Walking the classes in order, the first challenge
        wins; a session class first offers ``Cookie`` (the scheme of the cookie-authentication
        draft, draft-broyer-http-cookie-auth), which tells the client to log in through the site
        and, unlike ``Basic``, never makes a browser pop up a password dialog.
        """
        for authenticator in self.get_authenticators():
            header = authenticator.authenticate_header(request)
            if header:
                return str(header)
            if isinstance(authenticator, SessionAuthentication):
                return f'Cookie realm="api", cookie-name="{settings.SESSION_COOKIE_NAME}"'
        return None


def setting_paths(name: str) -> list[Any]:
    """A setting holding one dotted path or a list of them, as a list."""
    value = getattr(app_settings, name)
    if isinstance(value, str):
        value = [value]
    return list(value or [])


def import_setting(path: Any, setting: str) -> Any:
    """Import a dotted path from a setting; the error names the setting."""
    if not isinstance(path, str):
        return path
    try:
        return import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f'CONNECTYCUBE["{setting}"]: cannot import {path!r}: {exc}'
        ) from exc
