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
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.core.signals import setting_changed
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import mapping
from .client import (
    AuthenticationError,
    ConnectyCubeClient,
    ConnectyCubeError,
    NotFound,
    RateLimited,
    ServerError,
    Session,
    SessionExpired,
    TransportError,
    UserClient,
)
from .conf import ConfigurationError, app_settings
from .models import CubeSession, CubeUser
from .remote import get_client
from .secrecy import hide_secrets

logger = logging.getLogger("django_connectycube")

__all__ = [
    "AUTH_MODE_CIDP",
    "AUTH_MODE_PASSWORD",
    "SessionUnavailable",
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

AUTH_MODE_PASSWORD = "password"  # noqa: S105 - a mode name, not a secret
AUTH_MODE_CIDP = "cidp"

#: Remote failures that say "try again later" rather than "this will never work".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (TransportError, ServerError, RateLimited)


class SessionUnavailable(Exception):
    """No session could be had in time; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _is_valid(row: CubeSession | None, now: Any) -> bool:
    margin = timedelta(seconds=app_settings.SESSION_RENEW_MARGIN)
    return bool(row and row.token and row.expires_at and row.expires_at - margin > now)


def auth_mode() -> str:
    """The configured ``AUTH_MODE``, validated."""
    mode = app_settings.AUTH_MODE
    if mode not in (AUTH_MODE_PASSWORD, AUTH_MODE_CIDP):
        raise ConfigurationError(
            f'CONNECTYCUBE["AUTH_MODE"] must be "{AUTH_MODE_PASSWORD}" or "{AUTH_MODE_CIDP}", '
            f"got {mode!r}."
        )
    return str(mode)


@hide_secrets
def login_link(link: CubeUser, client: ConnectyCubeClient) -> Any:
    """A new remote session for a mirrored user: derived password, or a CIdP token."""
    if auth_mode() == AUTH_MODE_CIDP:
        return _login_cidp(link, client)
    if not link.login:
        if link.cube_id is None:
            raise NotFound(f"User {link.external_id} has no ConnectyCube identity yet.")
        link.login = client.get_user(link.cube_id).login or ""
    candidates = mapping.password_candidates(link.external_id, link.password_version or None)
    for attempt, candidate in enumerate(candidates, start=1):
        version, password = candidate
        try:
            session = client.create_user_session(login=link.login, password=password)
            break
        except SessionExpired:
            raise
        except AuthenticationError:
            if attempt == len(candidates):
                raise
    if link.cube_id is not None and session.user_id != link.cube_id:
        stray = session.user
        if stray is not None and not stray.external_id:
            # The user was deleted on ConnectyCube and the login auto-created an empty one in
            # its place: remove it again, and let the caller recreate the real one.
            client.as_user(session).delete_self()
        raise NotFound(f"ConnectyCube user {link.cube_id} no longer exists.")
    if version != mapping.current_password_version():
        version = _move_to_current_password(link, client, session, password, version)
    record_password_version(link, version)
    return session


def _move_to_current_password(
    link: CubeUser, client: ConnectyCubeClient, session: Session, old_password: str, old: int
) -> int:
    """After a login with a rotated-out secret, set the password derived from the current one;
    returns the version ConnectyCube has now."""
    version = mapping.current_password_version()
    new_password = mapping.derive_password(link.external_id, version)
    try:
        client.as_user(session).update_user(
            session.user_id, password=new_password, old_password=old_password
        )
    except ConnectyCubeError as exc:  # the login worked; moving on can wait for the next one
        logger.warning("Could not move %s to the current password: %s", link.external_id, exc)
        return old
    logger.info("Moved %s to password version %s", link.external_id, version)
    return version


def record_password_version(link: CubeUser, version: int) -> None:
    """Record the secret version the remote password was just proven to have, so
    ``password_version`` tells an operator which users still depend on an old secret."""
    if link.password_version != version:
        link.password_version = version
        CubeUser.objects.filter(pk=link.pk).update(password_version=version)


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


def _login_cidp(link: CubeUser, client: ConnectyCubeClient) -> Session:
    """Log in through our own identity provider; ConnectyCube creates the user on first use.

    ConnectyCube identifies CIdP users by the verifier's ``uid`` (our ``external_id``), so a
    remote user created by an earlier password-mode push is found again, not duplicated. When
    the link has no remote id yet, or its remote user was deleted and ConnectyCube made a new
    one for the same ``uid``, the link adopts the session's user.
    """
    from .cidp import make_login_token, make_tombstone_token

    if link.user_id is None:  # a deleted local user: log in only to delete the remote one
        return client.create_cidp_session(make_tombstone_token(link.external_id))
    session = client.create_cidp_session(make_login_token(link.user_id))
    if session.user_id is not None and session.user_id != link.cube_id:
        _adopt_remote_user(link, session)
    return session


def _adopt_remote_user(link: CubeUser, session: Session) -> None:
    remote_login = session.user.login if session.user is not None else None
    try:
        with transaction.atomic():
            CubeUser.objects.filter(pk=link.pk).update(
                cube_id=session.user_id,
                login=remote_login or link.login,
                updated_at=timezone.now(),
            )
    except IntegrityError as exc:
        raise SessionUnavailable(
            f"ConnectyCube user {session.user_id} is already linked to another local user; "
            f"an operator has to resolve the link of {link.external_id}.",
            retry_after=300,
        ) from exc
    logger.info("Linked %s to ConnectyCube user %s (CIdP)", link.external_id, session.user_id)
    link.cube_id = session.user_id
    link.login = remote_login or link.login


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
        from .outbox import mark_dirty

        with transaction.atomic():
            mark_dirty(user)
        link = CubeUser.objects.get(user_id=user.pk)
    return link


_bounded: dict[str, ConnectyCubeClient] = {}


def _bounded_client() -> ConnectyCubeClient:
    """A client whose timeouts and retries fit in ``SYNC_ON_LOGIN_TIMEOUT`` (shared, lazy).

    It shares the application session with every other client through the cache; only its
    patience differs, so a login never hangs on a slow ConnectyCube for the full task timeouts.
    """
    client = _bounded.get("client")
    if client is None:
        limit = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
        timeout = app_settings.TIMEOUT
        connect, read = timeout if isinstance(timeout, list | tuple) else (timeout, timeout)
        client = ConnectyCubeClient.from_settings(
            timeout=(min(float(connect), limit), min(float(read), limit)),
            retries=min(int(app_settings.RETRIES), 1),
            max_retry_wait=min(float(app_settings.MAX_RETRY_WAIT), limit / 2),
        )
        _bounded["client"] = client
    return client


def _reset_bounded(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CONNECTYCUBE", "CACHES"):
        old = _bounded.pop("client", None)
        if old is not None:
            old.close()


setting_changed.connect(_reset_bounded, dispatch_uid="django_connectycube.sessions.bounded")


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
    pusher = client or _bounded_client()
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
            if not needed:
                logger.warning("Push before login of %s failed: %s", link.external_id, exc)
                return link
            if not isinstance(exc, TRANSIENT_ERRORS):
                logger.error("Could not create %s on ConnectyCube: %s", link.external_id, exc)
            retry = _retry_after(exc) if isinstance(exc, TRANSIENT_ERRORS) else 60
            raise SessionUnavailable(
                "This user could not be set up on ConnectyCube yet; try again later.",
                retry_after=retry,
            ) from exc
    link.refresh_from_db()
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
    :class:`SessionUnavailable` (with ``retry_after``) when that cannot happen in time, and the
    client's errors for other remote failures.
    """
    if user is None or getattr(user, "pk", None) is None:
        raise ValueError("A saved local user is required.")
    row = _valid_reusable(user.pk)
    if row is not None:
        return row
    link = _ensure_link(user)
    if link.state in (CubeUser.State.DELETING, CubeUser.State.DELETED):
        raise SessionUnavailable("This user is being removed from ConnectyCube.", retry_after=60)
    cidp = auth_mode() == AUTH_MODE_CIDP
    if not cidp and (link.cube_id is None or link.state == CubeUser.State.PENDING):
        link = _push_before_login(user, link, client)
    wait = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
    try:
        return get_user_session(link, client=client, wait=wait)
    except NotFound as exc:
        if cidp:
            raise SessionUnavailable(
                "This user's ConnectyCube account is being restored; try again later.",
                retry_after=60,
            ) from exc
    # The remote user vanished (deleted on ConnectyCube behind our back): forget it, create it
    # again now (the create looks up the external id first, so this never duplicates), log in.
    from .outbox import mark_dirty

    logger.warning("ConnectyCube user of %s is gone; creating it again.", link.external_id)
    CubeSession.objects.filter(user_id=user.pk).delete()
    CubeUser.objects.filter(pk=link.pk).update(cube_id=None, pushed_digest="", avatar_digest="")
    mark_dirty(user)
    link = _push_before_login(user, CubeUser.objects.get(pk=link.pk), client)
    return get_user_session(link, client=client, wait=wait)


def refresh_session(user: Any, *, client: ConnectyCubeClient | None = None) -> CubeSession:
    """Like :func:`get_session_for_user`, but confirmed with ConnectyCube (one ``GET /session``).

    Catches a token the server dropped before our recorded expiry (a ConnectyCube restart, a
    clock skew, a logout elsewhere) and replaces it; a live token's expiry is slid and recorded.
    """
    client = client or get_client()
    row = get_session_for_user(user, client=client)
    try:
        remote = client.get_session(row.token)
    except AuthenticationError:
        remote = None
    if remote is None or (row.cube_user_id and remote.user_id != row.cube_user_id):
        link = CubeUser.objects.get(user_id=user.pk)
        return get_user_session(
            link, client=client, wait=float(app_settings.SYNC_ON_LOGIN_TIMEOUT), force=True
        )
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
