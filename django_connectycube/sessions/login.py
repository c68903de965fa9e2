"""Per-user ConnectyCube sessions for the API: the stored token, or a login made possible now.

:func:`get_session_for_user` is what the API calls. A stored token that is still valid is handed
out as is (:mod:`.stored_sessions`); otherwise the user is first made to exist on ConnectyCube
(a bounded synchronous push), and in ``AUTH_MODE = "cidp"`` it logs in with a signed token from
:mod:`.cidp` instead of the derived password, adopting the remote user that ConnectyCube creates
on the first such login.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from django_connectycube.client import (
    AuthenticationError,
    ConnectyCubeClient,
    ConnectyCubeError,
    NotFound,
)
from django_connectycube.conf import app_settings
from django_connectycube.errors import Busy, SessionUnavailable, SyncConflict
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sync import breaker, policy
from django_connectycube.sync import push as sync
from django_connectycube.sync.connection import login_client, shared_client
from django_connectycube.sync.logins import AUTH_MODE_CIDP, auth_mode
from django_connectycube.sync.owed import mark_dirty
from django_connectycube.sync.remote_ids import forget_remote_user
from django_connectycube.sync.user_sessions import (
    SESSION_TTL,
    get_user_session,
    reusable_session,
)

logger = logging.getLogger("django_connectycube")

__all__ = ["get_session_for_user", "refresh_session", "renew_session"]


def _ensure_link(user: Any) -> CubeUser:
    link = CubeUser.objects.filter(user_id=user.pk).first()
    if link is None:
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
        except Busy as exc:
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
        except (ConnectyCubeError, SyncConflict) as exc:
            transient = policy.classify(exc) is policy.Kind.TRANSIENT
            if not transient:
                # As the task would: a dead letter with its reason, not a row owed forever.
                policy.record(Q(pk=link.pk), exc)
            if not needed:
                logger.warning("Push before login of %s failed: %s", link.external_id, exc)
                return link
            if isinstance(exc, SyncConflict):
                raise
            if not transient:
                logger.error("Could not create %s on ConnectyCube: %s", link.external_id, exc)
            retry = policy.retry_after(exc) if transient else 60
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
        raise SyncConflict(link.last_error or f"The sync of {link.external_id} failed.")
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
    :class:`SyncConflict` when the user cannot be mirrored without an operator (the conflict is
    recorded on its link), and the client's errors for other remote failures.
    """
    if user is None or getattr(user, "pk", None) is None:
        raise ValueError("A saved local user is required.")
    row = reusable_session(user.pk)
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
    logger.warning("ConnectyCube user of %s is gone; creating it again.", link.external_id)
    CubeSession.objects.filter(user_id=user.pk).delete()
    forget_remote_user(link)
    mark_dirty(user)
    link = _push_before_login(user, CubeUser.objects.get(pk=link.pk), client)
    wait = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
    with _recording_conflicts(link):
        return get_user_session(link, client=client, wait=wait)


def renew_session(user: Any, *, client: ConnectyCubeClient | None = None) -> CubeSession:
    """A new token now, even when the stored one looks valid: ConnectyCube refused it (the
    frontend's SDK saw ``Required session does not exist``, or a confirmation did).

    Requests racing with the same report share one new token (the renewal claim).
    """
    if reusable_session(user.pk) is None:  # none yet, or one we know is dead: the usual way
        return get_session_for_user(user, client=client)
    link = CubeUser.objects.get(user_id=user.pk)
    wait = float(app_settings.SYNC_ON_LOGIN_TIMEOUT)
    try:
        with _recording_conflicts(link):
            return get_user_session(link, client=client, wait=wait, force=True)
    except NotFound as exc:  # the token died with its user (a remote that forgot us)
        return _recreate_and_log_in(user, link, client, exc)


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
        return renew_session(user, client=client)
    now = timezone.now()
    row.expires_at = remote.expires_at or now + SESSION_TTL
    row.last_used_at = now
    CubeSession.objects.filter(pk=row.pk).update(expires_at=row.expires_at, last_used_at=now)
    return row
