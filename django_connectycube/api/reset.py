"""``password-reset/``: one answer for every address, so it reveals none."""

from __future__ import annotations

import logging
import time

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import app_settings
from ..remote import get_client
from .base import ConnectyCubeAPIView
from .openapi import OpenApiResponse, extend_schema
from .serializers import ErrorSerializer, PasswordResetSerializer

logger = logging.getLogger("django_connectycube")

__all__ = ["PasswordResetView"]


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
