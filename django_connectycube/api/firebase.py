"""``POST login/`` with a Firebase phone token: which local user, and which session, it gets.

ConnectyCube verifies the token; the number is the token's own ``phone_number`` claim (see
:func:`django_connectycube.sessions.firebase.phone_claims`). The session handed back is always
one of the matched local user's own linked ConnectyCube user: the session ConnectyCube made for
its Firebase user is kept only when that user *is* the linked one, and ended otherwise.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.crypto import get_random_string
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from django_connectycube.api.errors import error_response
from django_connectycube.api.throttling import LoginGuard
from django_connectycube.client import APIError, ConnectyCubeClient, ConnectyCubeError, Session
from django_connectycube.conf import ConfigurationError, app_settings
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sessions import firebase
from django_connectycube.sessions import login as sessions
from django_connectycube.sync import policy, user_sessions
from django_connectycube.sync.connection import shared_client
from django_connectycube.sync.secrecy import hide_secrets

logger = logging.getLogger("django_connectycube")

__all__ = ["FirebasePhoneLoginMixin"]


class FirebasePhoneLoginMixin:
    """The Firebase half of :class:`~.login.LoginView`; override ``find_user_by_phone`` or
    ``create_user_for_phone`` in a subclass of the view."""

    if TYPE_CHECKING:
        invalid_credentials: Any

        def locked_response(self, retry_after: int) -> Response: ...
        def session_response(self, request: Request, row: CubeSession) -> Response: ...

    @method_decorator(hide_secrets)
    def firebase_login(self, request: Request, params: dict[str, Any]) -> Response:
        """Verify a Firebase phone token with ConnectyCube and log in the local user it names."""
        configured = app_settings.FIREBASE_PROJECT_ID
        if not self.firebase_phone_enabled() or not configured:
            return error_response(
                _("Firebase phone login is not enabled on this site."),
                "firebase_phone_disabled",
                status.HTTP_403_FORBIDDEN,
            )
        guard = LoginGuard(request, None)
        wait = guard.reserve()
        if wait is not None:
            return self.locked_response(wait)
        project_id, token = str(params.get("project_id") or configured), params["access_token"]
        try:
            if project_id != str(configured):
                raise firebase.InvalidFirebaseToken("it is not for this site's Firebase project")
            # Read before ConnectyCube is asked, so a token that could prove nothing costs no
            # remote session; trusted only once ConnectyCube has accepted the same token.
            claims = firebase.phone_claims(token, project_id)
        except firebase.InvalidFirebaseToken as exc:
            guard.failed()
            return error_response(
                _("Invalid Firebase token: %(reason)s.") % {"reason": exc},
                "invalid_credentials",
                status.HTTP_401_UNAUTHORIZED,
            )
        client = shared_client()
        try:
            remote = client.create_firebase_phone_session(project_id, token)
        except APIError as exc:
            if policy.unavailable(exc):
                guard.cancel()
                raise
            guard.failed()
            return error_response(self.invalid_credentials, "invalid_credentials", 401)
        except BaseException:
            guard.cancel()
            raise
        guard.succeeded()
        row = self.firebase_session(client, remote, claims)
        if row is None:
            return error_response(
                _("No account is linked to this phone number."),
                "phone_not_linked",
                status.HTTP_400_BAD_REQUEST,
            )
        return self.session_response(request, row)

    def firebase_session(
        self, client: ConnectyCubeClient, remote: Session, claims: firebase.PhoneClaims
    ) -> CubeSession | None:
        """The stored session of the local user the proven phone names; None when there is none.

        ``remote`` is the session ConnectyCube made for its own user of this Firebase identity.
        It is kept only when that user is the matched local user's linked one; any other user
        (a separate Firebase account, or somebody else's account) must not be handed out under
        this local user's name, so its session is ended and the linked user's own is used.
        """
        phone = claims.phone_number
        user = self.find_user_by_phone(phone)
        if user is None and app_settings.FIREBASE_CREATE_USERS:
            user = self.create_user_for_phone(phone)
        if user is None or not getattr(user, "is_active", True):
            self._discard(client, remote)
            return None
        link = CubeUser.objects.filter(user_id=user.pk).first()
        if link is not None and link.cube_id is not None and link.cube_id == remote.user_id:
            return user_sessions.store_session(user, remote)
        self._discard(client, remote)
        return sessions.get_session_for_user(user)

    @staticmethod
    def _discard(client: ConnectyCubeClient, remote: Session) -> None:
        with contextlib.suppress(ConnectyCubeError):
            client.destroy_session(remote.token)

    def firebase_phone_enabled(self) -> bool:
        """Whether phones may find local users: a subclass's own ``find_user_by_phone`` vouches
        for itself; else ``FIREBASE_PHONE_LOOKUP`` must name a verified source."""
        if type(self).find_user_by_phone is not FirebasePhoneLoginMixin.find_user_by_phone:
            return True
        try:
            return firebase.phone_lookup() is not None  # None: switched off
        except ConfigurationError as exc:
            logger.error("Firebase phone login refused: %s", exc)
            return False

    def find_user_by_phone(self, phone: str) -> Any:
        """The one active local user with this verified phone, else None.

        Only ever asks the source ``FIREBASE_PHONE_LOOKUP`` names and the integrator vouched
        for (see :mod:`django_connectycube.sessions.firebase`), never a plain profile field.
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
