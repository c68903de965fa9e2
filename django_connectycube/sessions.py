"""Per-user ConnectyCube sessions: reuse the stored token while it is valid, else log in again.

Tokens live encrypted in :class:`~.models.CubeSession`, one row per user. Renewal is claimed
with a conditional ``UPDATE`` on that row (works on every database, across processes), so two
requests that find the token expired at the same moment make one remote session, not two.

:func:`get_session_for_user` is what the API calls: it also makes sure the user exists on
ConnectyCube first (a bounded synchronous push), and in ``AUTH_MODE = "cidp"`` it logs in with a
signed token from :mod:`.cidp` instead of the derived password, adopting the remote user that
ConnectyCube creates on the first such login.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import breaker, policy
from .client import (
    AuthenticationError,
    ConnectyCubeClient,
    ConnectyCubeError,
    NotFound,
    Session,
    UserClient,
)
from .client_factory import login_client, shared_client
from .conf import app_settings
from .failures import SyncConflict
from .logins import AUTH_MODE_CIDP, AUTH_MODE_PASSWORD, auth_mode, login_link
from .models import CubeSession, CubeUser

logger = logging.getLogger("django_connectycube")

__all__ = [
    "AUTH_MODE_CIDP",
    "AUTH_MODE_PASSWORD",
    "SessionUnavailable",
    "auth_mode",
    "call_as_user",
    "destroy_session",
    "get_session_for_user",
    "get_user_session",
    "invalidate",
    "is_transient",
    "login_link",
    "refresh_session",
    "retry_after_for",
    "store_session",
]

T = TypeVar("T")

SESSION_TTL = timedelta(hours=2)
CLAIM_FOR = timedelta(seconds=30)

#: Remote failures that say "try again later" rather than "this will never work".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = policy.UNAVAILABLE


class SessionUnavailable(Exception):
    """No session could be had in time; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _is_valid(row: CubeSession | None, now: Any) -> bool:
    margin = timedelta(seconds=app_settings.SESSION_RENEW_MARGIN)
    return bool(row and row.token and row.expires_at and row.expires_at - margin > now)


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
    client = client or shared_client()
    if link.user_id is None:
        return func(client.as_user(login_link(link, client)))
    row = get_user_session(link, client=client)
    try:
        return func(client.as_user(row.token, user_id=row.cube_user_id))
    except AuthenticationError:
        if link.cube_id is not None:
            # Logging in to a user that no longer exists would auto-create a stray one.
            client.get_user(link.cube_id)  # NotFound propagates; a renamed one is ours
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
    client = client or shared_client()
    with contextlib.suppress(AuthenticationError, NotFound):  # already gone remotely
        client.destroy_session(row.token)
    row.delete()
    return True


# ---- the API's entry points ------------------------------------------------------------------


def _retry_after(exc: BaseException) -> int:
    default = int(app_settings.UNAVAILABLE_RETRY_AFTER)
    seconds = getattr(exc, "retry_after", None)
    return max(1, int(seconds)) if seconds else default


def _valid_reusable(user_pk: Any) -> CubeSession | None:
    """The stored session when it can be handed out as is (no remote call, one DB read)."""
    row = (
        CubeSession.objects.filter(user_id=user_pk, user__connectycube__cube_id__isnull=False)
    ).first()
    now = timezone.now()
    if row is None or not _is_valid(row, now):
        return None
    CubeSession.objects.filter(pk=row.pk).update(last_used_at=now)
    row.last_used_at = now
    return row


def _ensure_link(user: Any) -> CubeUser:
    link = CubeUser.objects.filter(user_id=user.pk).first()
    if link is None:
        from .owed import mark_dirty

        with transaction.atomic():
            mark_dirty(user)
        link = CubeUser.objects.get(user_id=user.pk)
    return link


def _push_before_login(user: Any, link: CubeUser, client: ConnectyCubeClient | None) -> CubeUser:
    """Push a not-yet-mirrored user now, within ``SYNC_ON_LOGIN_TIMEOUT``.

    A login cannot wait for the worker: without a remote user there is nothing to log in to.
    When a worker is pushing the same user right now (``Busy``), wait for it instead. An owed
    *update* of a user that already exists remotely is tried but never blocks the login.
    """
    from . import sync

    limit = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
    deadline = time.monotonic() + limit
    needed = link.cube_id is None
    paused = breaker.is_open()
    if paused is not None or not app_settings.SYNC_ENABLED:
        # ConnectyCube is failing (the circuit is open) or sync is switched off: no push now.
        if not needed:
            return link
        raise SessionUnavailable(
            "This user is not on ConnectyCube yet and cannot be set up right now; try again later.",
            retry_after=max(1, int(paused or 60)),
        )
    pusher = client or login_client()
    pushed = False
    while not pushed:
        try:
            sync.push_user(user.pk, client=pusher)
            pushed = True
        except sync.Busy as exc:
            link.refresh_from_db()
            if link.cube_id is not None and (not needed or link.state != CubeUser.State.PENDING):
                return link
            if time.monotonic() >= deadline:
                if not needed:
                    return link
                raise SessionUnavailable(
                    "This user is being set up on ConnectyCube; try again shortly."
                ) from exc
            time.sleep(0.1)
        except (ConnectyCubeError, sync.SyncConflict) as exc:
            transient = policy.classify(exc) is policy.Kind.TRANSIENT
            if not transient:
                # As the task would: a dead letter with its reason, not a row owed forever.
                policy.record(Q(pk=link.pk), exc)
            if not needed:
                logger.warning("Push before login of %s failed: %s", link.external_id, exc)
                return link
            if isinstance(exc, sync.SyncConflict):
                raise
            if not transient:
                logger.error("Could not create %s on ConnectyCube: %s", link.external_id, exc)
            retry = _retry_after(exc) if transient else 60
            raise SessionUnavailable(
                "This user could not be set up on ConnectyCube yet; try again later.",
                retry_after=retry,
            ) from exc
        except Exception as exc:
            # Not ConnectyCube's: a bug in the mapping callable, a missing avatar file. Counted
            # on the row like a task's failure (never silent), then the caller's to report.
            policy.record(Q(pk=link.pk), exc)
            raise
    link.refresh_from_db()
    if link.cube_id is None and link.state == CubeUser.State.FAILED:
        # A dead letter: waiting will not help, an operator has to act (see its last_error).
        raise sync.SyncConflict(link.last_error or f"The sync of {link.external_id} failed.")
    if link.cube_id is None:
        raise SessionUnavailable(
            "This user is not on ConnectyCube yet (its sync failed or is disabled); an operator "
            "can re-sync it from the admin.",
            retry_after=60,
        )
    return link


def get_session_for_user(user: Any, *, client: ConnectyCubeClient | None = None) -> CubeSession:
    """A valid ConnectyCube session for a local user: the stored one, or a fresh login.

    A stored token that is still valid costs no remote call. Otherwise the user is first made
    to exist on ConnectyCube (password mode: a bounded synchronous push; CIdP mode: ConnectyCube
    creates it at login), then logged in once even when several requests race. Raises
    :class:`SessionUnavailable` (with ``retry_after``) when that cannot happen in time,
    ``sync.SyncConflict`` when the user cannot be mirrored without an operator (the conflict is
    recorded on its link), and the client's errors for other remote failures.
    """
    if user is None or getattr(user, "pk", None) is None:
        raise ValueError("A saved local user is required.")
    row = _valid_reusable(user.pk)
    if row is not None:
        return row
    link = _ensure_link(user)
    if link.state in (CubeUser.State.DELETING, CubeUser.State.DELETED):
        raise SessionUnavailable("This user is being removed from ConnectyCube.", retry_after=60)
    return _log_in(user, link, client)


@contextlib.contextmanager
def _recording_conflicts(link: CubeUser) -> Iterator[None]:
    """A conflict met while logging a user in is recorded on the row like a push's (the push
    before a login records its own)."""
    try:
        yield
    except SyncConflict as exc:
        policy.record(Q(pk=link.pk), exc, permanent=True)
        raise


def _log_in(user: Any, link: CubeUser, client: ConnectyCubeClient | None) -> CubeSession:
    cidp = auth_mode() == AUTH_MODE_CIDP
    if not cidp and (link.cube_id is None or link.state == CubeUser.State.PENDING):
        link = _push_before_login(user, link, client)
    wait = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
    try:
        with _recording_conflicts(link):
            return get_user_session(link, client=client, wait=wait)
    except NotFound as exc:
        return _recreate_and_log_in(user, link, client, exc)


def _recreate_and_log_in(
    user: Any, link: CubeUser, client: ConnectyCubeClient | None, gone: NotFound
) -> CubeSession:
    """The remote user vanished (deleted on ConnectyCube behind our back, or forgotten by a
    remote that was reset): forget it, create a new one now under a new external id (the old
    one is readable by anyone and may be claimed by now), and log in."""
    if auth_mode() == AUTH_MODE_CIDP:
        raise SessionUnavailable(
            "This user's ConnectyCube account is being restored; try again later.",
            retry_after=60,
        ) from gone
    from .owed import mark_dirty
    from .sync import forget_remote_user

    logger.warning("ConnectyCube user of %s is gone; creating it again.", link.external_id)
    CubeSession.objects.filter(user_id=user.pk).delete()
    forget_remote_user(link)
    mark_dirty(user)
    link = _push_before_login(user, CubeUser.objects.get(pk=link.pk), client)
    wait = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
    with _recording_conflicts(link):
        return get_user_session(link, client=client, wait=wait)


def refresh_session(user: Any, *, client: ConnectyCubeClient | None = None) -> CubeSession:
    """Like :func:`get_session_for_user`, but confirmed with ConnectyCube (one ``GET /session``).

    Catches a token the server dropped before our recorded expiry (a ConnectyCube restart, a
    clock skew, a logout elsewhere) and replaces it; a live token's expiry is slid and recorded.
    """
    client = client or shared_client()
    row = get_session_for_user(user, client=client)
    try:
        remote = client.get_session(row.token)
    except AuthenticationError:
        remote = None
    if remote is None or (row.cube_user_id and remote.user_id != row.cube_user_id):
        link = CubeUser.objects.get(user_id=user.pk)
        wait = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
        try:
            with _recording_conflicts(link):
                return get_user_session(link, client=client, wait=wait, force=True)
        except NotFound as exc:  # the token died with its user (a remote that forgot us)
            return _recreate_and_log_in(user, link, client, exc)
    now = timezone.now()
    row.expires_at = remote.expires_at or now + SESSION_TTL
    row.last_used_at = now
    CubeSession.objects.filter(pk=row.pk).update(expires_at=row.expires_at, last_used_at=now)
    return row


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


def is_transient(exc: BaseException) -> bool:
    """Whether an error means "ConnectyCube is unavailable right now" (answer 503)."""
    return isinstance(exc, (*TRANSIENT_ERRORS, SessionUnavailable))


def retry_after_for(exc: BaseException) -> int:
    """Seconds a client should wait before trying again after ``exc``."""
    return _retry_after(exc)
