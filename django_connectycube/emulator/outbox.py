"""The emails the real service would send: password resets and email confirmations.

The emulator sends nothing; it records each message in ``Store.outbox`` (the control API's
``GET /_emulator/state``), where tests read the reset code or the confirmation link.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .models import OutboxEmail, User

__all__ = ["CONFIRM_EMAIL_PATH", "Mailbox"]

#: The path of the confirmation link (admin.connectycube.com's, served here by the emulator).
CONFIRM_EMAIL_PATH = "/user_email/confirm_email"


class Mailbox:
    """The store's outbox and the user records its messages change."""

    # Provided by Store (declared here as attributes: a stub method would shadow Store's).
    lock: Any
    users: dict[int, User]
    outbox: list[OutboxEmail]
    now: Callable[[], datetime]
    user_by_email: Callable[[str], User | None]
    _changed_user: Callable[[int], None]

    def record_password_reset(self, email: str) -> OutboxEmail | None:
        with self.lock:
            user = self.user_by_email(email)
            if user is None:
                return None
            message = OutboxEmail(
                to=user.email or email,
                user_id=user.id,
                subject="Password reset instructions",
                body=(
                    "Someone asked to reset the password of your account. "
                    f"Reset code: {secrets.token_hex(8)}"
                ),
                sent_at=self.now(),
            )
            self.outbox.append(message)
            return message

    def request_email_confirmation(self, user: User, base_url: str) -> OutboxEmail:
        """Mark ``user`` unconfirmed and "send" the confirmation email with its link."""
        with self.lock:
            user.email_confirmed = False
            user.confirmation_token = secrets.token_hex(16)
            self._changed_user(user.id)
            link = f"{base_url}{CONFIRM_EMAIL_PATH}?token={user.confirmation_token}"
            message = OutboxEmail(
                to=user.email or "",
                user_id=user.id,
                subject="Email confirmation",
                body=f"Please confirm your registration by following the link: {link}",
                sent_at=self.now(),
            )
            self.outbox.append(message)
            return message

    def confirm_email(self, user: User) -> None:
        with self.lock:
            user.email_confirmed = True
            user.confirmation_token = None
            self._changed_user(user.id)

    def user_by_confirmation_token(self, token: str) -> User | None:
        with self.lock:
            return next((u for u in self.users.values() if u.confirmation_token == token), None)
