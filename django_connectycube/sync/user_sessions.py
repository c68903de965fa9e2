"""A user's stored ConnectyCube session: reused while it is valid, renewed by one process.

Tokens live encrypted in :class:`~.models.CubeSession`, one row per user. Renewal is claimed
with a conditional ``UPDATE`` on that row (works on every database, across processes), so two
requests that find the token expired at the same moment make one remote session, not two.

This is what the sync engine calls as the user (:func:`call_as_user`); it logs in with whatever
:mod:`.logins` says and never pushes. Making sure the user exists on ConnectyCube before a login
is the session manager's part (:mod:`.sessions`, which sits above the sync engine).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from django_connectycube.client import (
    AuthenticationError,
    ConnectyCubeClient,
    NotFound,
    Session,
    UserClient,
)
from django_connectycube.errors import SessionUnavailable
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sync.connection import shared_client
from django_connectycube.sync.logins import log_in

__all__ = [
    "CLAIM_FOR",
    "SESSION_TTL",
    "call_as_user",
    "destroy_session",
    "get_user_session",
    "reusable_session",
    "store_session",
]

T = TypeVar("T")

SESSION_TTL = timedelta(hours=2)
CLAIM_FOR = timedelta(seconds=30)
#: A stored token this close to its expiry is replaced rather than handed out, so a client gets
#: minutes of use from it, not a token that dies on its first request.
RENEW_MARGIN = timedelta(minutes=5)


def _is_valid(row: CubeSession | None, now: Any) -> bool:
    """Whether a stored row holds a token still usable beyond ``RENEW_MARGIN``."""
    return bool(row and row.token and row.expires_at and row.expires_at - RENEW_MARGIN > now)


def reusable_session(user_pk: Any) -> CubeSession | None:
    """The stored session when it can be handed out as is: one read, no write, no remote call.

    It is what a page asks on every load, so it records nothing (``last_used_at`` is when the
    token was made or last confirmed with ConnectyCube).
    """
    row = (
        CubeSession.objects.filter(user_id=user_pk, user__connectycube__cube_id__isnull=False)
    ).first()
    return row if _is_valid(row, timezone.now()) else None


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
    client = client or shared_client()
    now = timezone.now()
    row = CubeSession.objects.filter(user_id=link.user_id).first()
    if not force and _is_valid(row, now):
        return row  # type: ignore[return-value]
    if row is None:
        try:
            with transaction.atomic():
                row = CubeSession.objects.create(user_id=link.user_id)
        except IntegrityError:
            row = CubeSession.objects.filter(user_id=link.user_id).first()
            if row is None:  # not a lost race: the local user was deleted meanwhile (FK)
                raise SessionUnavailable(
                    f"Local user {link.external_id} was deleted while its session was made."
                ) from None
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
        session = log_in(link, client)
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
    client = client or shared_client()
    if link.user_id is None:
        return func(client.as_user(log_in(link, client)))
    row = get_user_session(link, client=client)
    try:
        return func(client.as_user(row.token, user_id=row.cube_user_id))
    except AuthenticationError:
        if link.cube_id is not None:
            # Logging in to a user that no longer exists would auto-create a stray one.
            client.get_user(link.cube_id)  # NotFound propagates; a renamed one is ours
        row = get_user_session(link, client=client, force=True)
        return func(client.as_user(row.token, user_id=row.cube_user_id))


def destroy_session(user_pk: Any, *, client: ConnectyCubeClient | None = None) -> bool:
    """End the user's remote session and forget it; True if there was one."""
    row = CubeSession.objects.filter(user_id=user_pk).first()
    if row is None or not row.token:
        return False
    client = client or shared_client()
    with contextlib.suppress(AuthenticationError, NotFound):  # already gone remotely
        client.destroy_session(row.token)
    row.delete()
    return True


def store_session(user: Any, session: Session) -> CubeSession:
    """Keep a session made elsewhere (e.g. a Firebase login) as the user's stored session.

    The previous token, if any, is simply replaced (not destroyed remotely: it expires by itself
    and may still be in use by the frontend that holds it).
    """
    now = timezone.now()
    values = {
        "token": session.token,
        "cube_user_id": session.user_id,
        "expires_at": session.expires_at or now + SESSION_TTL,
        "last_used_at": now,
        "renewing_until": None,
    }
    row, _ = CubeSession.objects.update_or_create(user_id=user.pk, defaults=values)
    return row
