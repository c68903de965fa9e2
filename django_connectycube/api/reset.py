"""``password-reset/``: one answer for every address, so it reveals none."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.sites.shortcuts import get_current_site
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from django_connectycube.api.base import ConnectyCubeAPIView
from django_connectycube.api.openapi import OpenApiResponse, extend_schema
from django_connectycube.api.serializers import ErrorSerializer, PasswordResetSerializer
from django_connectycube.api.throttling import PasswordResetAddressThrottle, PasswordResetIPThrottle
from django_connectycube.sync import tasks

logger = logging.getLogger("django_connectycube")

__all__ = ["PasswordResetView"]


class SendAfterAnswer(Response):
    """A response that runs ``after`` once the server has sent it.

    WSGI and ASGI servers call ``close()`` after the last byte of the answer went out, so the
    client has its answer before ``after`` starts, on the same thread: no broker, no thread of
    our own, and the database connection is still this request's (Django closes it in
    ``close()`` too, right after).
    """

    def __init__(self, *args: Any, after: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after: Callable[[], None] | None = after

    def close(self) -> None:
        after, self.after = self.after, None
        try:
            if after is not None:
                after()
        except Exception:  # the answer is sent: nobody but the log can hear of it now
            logger.exception("Password reset e-mail could not be queued")
        finally:
            super().close()


class PasswordResetView(ConnectyCubeAPIView):
    """``POST password-reset/``: the same answer for every address.

    The request only validates the address: nothing in it depends on whether the address
    belongs to anyone. :meth:`send_reset` runs after the answer is sent (see
    :class:`SendAfterAnswer`) and queues
    :func:`~django_connectycube.sync.tasks.send_password_reset`, which works out whether the
    address is local, only ConnectyCube's or unknown, and mails accordingly. Without a broker
    (``task_always_eager``) the task runs right there, still after the answer, so a slow mail
    relay, ConnectyCube's answer or a database look-up cannot tell known addresses from unknown
    ones either way. Throttles (``API_THROTTLE_RATES``) keep anyone from mailing an address
    over and over, or from probing many addresses from one client.
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
        serializer = PasswordResetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)  # says nothing about any account
        email = serializer.validated_data["email"]
        return SendAfterAnswer(
            {k: str(v) for k, v in self.answer.items()},
            status=status.HTTP_202_ACCEPTED,
            after=lambda: self.send_reset(request, email),
        )

    def send_reset(self, request: Request, email: str) -> None:
        """Queue the reset e-mail, once the answer is sent; override to send it another way.

        It runs after the answer, so its time no longer shows; an exception is logged.
        """
        site = get_current_site(request._request)
        tasks.send_password_reset.delay(
            email, str(site.domain), str(site.name), bool(request.is_secure())
        )
