"""The "Require email confirmation" switch: sign-ups need an email and a followed link.

What the docs say [D server/email_templates.md "Email confirmation"]: after registering, the
user receives an email "asking them to verify their email address ... to confirm their identity
... and activate access", with a link to ``/user_email/confirm_email?token=...``. What the
emulator infers, because no doc or log shows it (marked [I] in ``docs/fidelity.md``):

- with the switch on, a sign-up (``POST /users``, or a session that creates its user) without an
  ``email`` answers 422 ``{"errors": {"email": ["cannot be blank"]}}``;
- the new user is unconfirmed; a session or login with its password answers 403
  ``{"errors": {"base": ["Email is not confirmed"]}}`` until the link is followed;
- guests and users of an identity provider (CIdP, Firebase) are not asked to confirm;
- users made while the switch was off, and seeded users, count as confirmed.

The link is served by the emulator itself; tests read it from the outbox
(``Emulator.outbox``) or call ``Emulator.confirm_email(user_id)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import NOT_FOUND
from .models import User
from .switches import SwitchGuards
from .transport import Request, Response
from .wire import ApiError

__all__ = ["EmailConfirmation"]

#: Sources whose users must confirm their email (password sign-ups, not identity providers).
CONFIRMING_SOURCES = frozenset({"signup", "auto"})


class EmailConfirmation(SwitchGuards):
    """User creation that honours the switch, the login check, and the link's route."""

    url: str | None

    def _register(
        self, request: Request, data: Mapping[str, Any], *, source: str = "signup"
    ) -> User:
        """Create a user from a sign-up or a first password login."""
        confirming = self.require_email_confirmation and source in CONFIRMING_SOURCES
        if confirming and data.get("email") in (None, ""):
            raise ApiError.field("email", "cannot be blank")
        user = self.store.create_user(data, source=source)
        if confirming:
            self.store.request_email_confirmation(user, self.url or request.base_url)
        return user

    def _check_email_confirmed(self, user: User) -> None:
        if self.require_email_confirmation and not user.email_confirmed:
            raise ApiError(403, {"base": ["Email is not confirmed"]})

    def handle_confirm_email(self, request: Request) -> Response:
        token = self._required_param(request, "token")
        user = self.store.user_by_confirmation_token(token)
        if user is None:
            raise ApiError(404, NOT_FOUND)
        self.store.confirm_email(user)
        return Response(200, {"email_confirmed": True})

    def confirm_email(self, user_id: int) -> None:
        """Confirm a user's email as following the link would (a test helper)."""
        with self.store.lock:
            user = self.store.users.get(user_id)
            if user is None:
                raise KeyError(f"no user with id {user_id}")
            self.store.confirm_email(user)
            self.store.commit()
