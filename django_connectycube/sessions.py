"""Per-user ConnectyCube sessions: reuse the stored token while it is valid, else log in again.

Tokens live encrypted in :class:`~.models.CubeSession`, one row per user. Renewal is claimed
with a conditional ``UPDATE`` on that row (works on every database, across processes), so two
requests that find the token expired at the same moment make one remote session, not two.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import mapping
from .client import AuthenticationError, ConnectyCubeClient, NotFound, UserClient
from .conf import app_settings
from .models import CubeSession, CubeUser
from .remote import get_client

logger = logging.getLogger("django_connectycube")

__all__ = [
    "SessionUnavailable",
    "call_as_user",
    "destroy_session",
    "get_user_session",
    "invalidate",
    "login_link",
]

T = TypeVar("T")

SESSION_TTL = timedelta(hours=2)
CLAIM_FOR = timedelta(seconds=30)


class SessionUnavailable(Exception):
    """No session could be had in time; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _is_valid(row: CubeSession | None, now: Any) -> bool:
    margin = timedelta(seconds=app_settings.SESSION_RENEW_MARGIN)
    return bool(row and row.token and row.expires_at and row.expires_at - margin > now)


def login_link(link: CubeUser, client: ConnectyCubeClient) -> Any:
    """A new remote session for a mirrored user, with its derived password."""
    password = mapping.derive_password(link.external_id, link.password_version or None)
    if not link.login:
        if link.cube_id is None:
            raise NotFound(f"User {link.external_id} has no ConnectyCube identity yet.")
        link.login = client.get_user(link.cube_id).login or ""
    session = client.create_user_session(login=link.login, password=password)
    if link.cube_id is not None and session.user_id != link.cube_id:
        stray = session.user
        if stray is not None and not stray.external_id:
            # The user was deleted on ConnectyCube and the login auto-created an empty one in
            # its place: remove it again, and let the caller recreate the real one.
            client.as_user(session).delete_self()
        raise NotFound(f"ConnectyCube user {link.cube_id} no longer exists.")
    return session


def get_user_session(
    link: CubeUser,
    *,
    client: ConnectyCubeClient | None = None,
    wait: float = 10.0,
    force: bool = False,
) -> CubeSession:
    """A stored, valid session for the link's local user (logging in when needed)."""
    if link.user_id is None:
        raise ValueError("A deleted user has no stored session.")
    client = client or get_client()
    now = timezone.now()
    row = CubeSession.objects.filter(user_id=link.user_id).first()
    if not force and _is_valid(row, now):
        return row  # type: ignore[return-value]
    if row is None:
        try:
            with transaction.atomic():
                row = CubeSession.objects.create(user_id=link.user_id)
        except IntegrityError:
            row = CubeSession.objects.get(user_id=link.user_id)
    stale_token = row.token if force else None

    deadline = time.monotonic() + wait
    while not _claim(row.pk):
        if time.monotonic() > deadline:
            raise SessionUnavailable("Another request is renewing this user's session.")
        time.sleep(0.05)
        row.refresh_from_db()
        if _is_valid(row, timezone.now()) and row.token != stale_token:
            return row
    try:
        row.refresh_from_db()
        now = timezone.now()
        if _is_valid(row, now) and (not force or row.token != stale_token):
            return row
        session = login_link(link, client)
        row.token = session.token
        row.cube_user_id = session.user_id or link.cube_id
        row.expires_at = session.expires_at or now + SESSION_TTL
        row.last_used_at = now
        row.renewing_until = None
        row.save(
            update_fields=["token", "cube_user_id", "expires_at", "last_used_at", "renewing_until"]
        )
        return row
    finally:
        CubeSession.objects.filter(pk=row.pk).update(renewing_until=None)


def _claim(pk: int) -> bool:
    now = timezone.now()
    return bool(
        CubeSession.objects.filter(pk=pk)
        .filter(Q(renewing_until__isnull=True) | Q(renewing_until__lt=now))
        .update(renewing_until=now + CLAIM_FOR)
    )


def call_as_user(
    link: CubeUser, func: Callable[[UserClient], T], *, client: ConnectyCubeClient | None = None
) -> T:
    """Run ``func`` with a user client for the link, logging in again once if the token died.

    A tombstone (the local user is gone) has no stored session: it gets a throwaway one.
    """
    client = client or get_client()
    if link.user_id is None:
        return func(client.as_user(login_link(link, client)))
    row = get_user_session(link, client=client)
    try:
        return func(client.as_user(row.token, user_id=row.cube_user_id))
    except AuthenticationError:
        if link.cube_id is not None:
            # Logging in to a user that no longer exists would auto-create a stray one.
            client.get_user(link.cube_id)  # NotFound propagates
        row = get_user_session(link, client=client, force=True)
        return func(client.as_user(row.token, user_id=row.cube_user_id))


def invalidate(user_pk: Any) -> None:
    """Forget a user's stored token (it will be replaced on next use)."""
    CubeSession.objects.filter(user_id=user_pk).update(token="", expires_at=None)


def destroy_session(user_pk: Any, *, client: ConnectyCubeClient | None = None) -> bool:
    """End the user's remote session and forget it; True if there was one."""
    row = CubeSession.objects.filter(user_id=user_pk).first()
    if row is None or not row.token:
        return False
    client = client or get_client()
    with contextlib.suppress(AuthenticationError, NotFound):  # already gone remotely
        client.destroy_session(row.token)
    row.delete()
    return True
