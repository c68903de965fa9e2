"""``password-reset/``: one answer for every address, so it reveals none."""

from __future__ import annotations

import logging
import time

from django.contrib.sites.shortcuts import get_current_site
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from .. import tasks
from ..conf import app_settings
from .base import ConnectyCubeAPIView
from .openapi import OpenApiResponse, extend_schema
from .serializers import ErrorSerializer, PasswordResetSerializer
from .throttling import PasswordResetAddressThrottle, PasswordResetIPThrottle

logger = logging.getLogger("django_connectycube")

__all__ = ["PasswordResetView"]


class PasswordResetView(ConnectyCubeAPIView):
    """``POST password-reset/``: one answer, in one fixed time, for every address.

    The view only validates the address and queues :func:`~django_connectycube.tasks.
    send_password_reset`, which works out whether the address is local, only ConnectyCube's or
    unknown, and mails accordingly. So the request does the same work for every address, and it
    then waits until ``PASSWORD_RESET_MIN_SECONDS`` have passed since it arrived: a slow mail
    relay, ConnectyCube's answer or a database look-up can no longer tell known addresses from
    unknown ones. Throttles (``API_THROTTLE_RATES``) keep anyone from mailing an address over and
    over, or from probing many addresses from one client.
    """

    permission_classes = [AllowAny]
    connectycube_throttle_classes = [PasswordResetIPThrottle, PasswordResetAddressThrottle]
    answer = {
        "detail": _("If this address belongs to an account, a reset e-mail is on its way."),
        "code": "password_reset_requested",
    }

    @extend_schema(
        request=PasswordResetSerializer,
        responses={
            202: ErrorSerializer,
            400: OpenApiResponse(description="Invalid e-mail."),
            429: OpenApiResponse(ErrorSerializer, description="Throttled (Retry-After)."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        deadline = time.monotonic() + float(app_settings.PASSWORD_RESET_MIN_SECONDS)
        serializer = PasswordResetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)  # says nothing about any account
        email = serializer.validated_data["email"]
        try:
            self.send_reset(request, email)
        except Exception:  # anything shown here would tell known from unknown addresses
            logger.exception("Password reset e-mail could not be queued")
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        else:
            logger.warning(
                "Password reset answered %.2f s late: queueing the e-mail took longer than "
                "PASSWORD_RESET_MIN_SECONDS",
                -remaining,
            )
        return Response(
            {k: str(v) for k, v in self.answer.items()}, status=status.HTTP_202_ACCEPTED
        )

    def send_reset(self, request: Request, email: str) -> None:
        """Queue the reset e-mail; override to send it another way (keep it fast and the same
        for every address, or the answer time gives known addresses away)."""
        site = get_current_site(request._request)
        tasks.send_password_reset.delay(
            email, str(site.domain), str(site.name), bool(request.is_secure())
        )
