"""How a mirrored user logs in to ConnectyCube: the derived password, or a CIdP token.

Both paths meet remote identity fields the user can edit (they hold a token of their own), so
neither trusts them blindly:

* **Password mode** logs in under the login the link owns. If the user renamed their remote login,
  the login is retried under the remote user's current login (read by its id, which only this
  site recorded), and the row is made owed, so the next push puts the owned login back.
* **CIdP mode** lets ConnectyCube find the user by our ``uid`` (the link's minted external id).
  The user it answers with is adopted only when no other link holds it and the link had no
  remote user, or the one it had is gone, in which case the (by now public) external id is
  replaced by a new one first. Anything else is a :class:`~.failures.SyncConflict`.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from django_connectycube.client import (
    AuthenticationError,
    ConnectyCubeClient,
    ConnectyCubeError,
    NotFound,
    Session,
    SessionExpired,
)
from django_connectycube.conf import ConfigurationError, app_settings
from django_connectycube.errors import SyncConflict
from django_connectycube.models import CubeUser, identity
from django_connectycube.sync import mapping, owed
from django_connectycube.sync.cidp import make_login_token, make_tombstone_token
from django_connectycube.sync.remote_ids import (
    forget_remote_user,
    learn,
    other_holder,
    release_stale_claim,
    still_ours,
)
from django_connectycube.sync.secrecy import hide_secrets

logger = logging.getLogger("django_connectycube")

__all__ = ["AUTH_MODE_CIDP", "AUTH_MODE_PASSWORD", "auth_mode", "log_in"]

AUTH_MODE_PASSWORD = "password"  # noqa: S105 - a mode name, not a secret
AUTH_MODE_CIDP = "cidp"
#: A user without external id created this close to the login's session was made by that login.
AUTO_CREATED_WITHIN = timedelta(minutes=1)


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
def log_in(link: CubeUser, client: ConnectyCubeClient) -> Session:
    """A new remote session for the link's user: derived password, or a CIdP token."""
    if auth_mode() == AUTH_MODE_CIDP:
        return _login_cidp(link, client)
    if not link.login:
        if link.cube_id is None:
            raise NotFound(f"User {link.external_id} has no ConnectyCube identity yet.")
        link.login = client.get_user(link.cube_id).login or ""
    refused: AuthenticationError | None
    try:
        session: Session | None
        session, version, password = _password_login(link, link.login, client)
    except AuthenticationError as exc:
        session, refused = None, exc
    else:
        refused = None
        if not _is_ours(link, session, client):
            session = None
    if session is None:
        # The owned login no longer names our user: the user renamed it on ConnectyCube (they
        # hold a token), or our user is gone (deleted, or forgotten by a reset remote).
        current = _renamed_login(link, client)  # NotFound: gone
        if current is None:
            if refused is not None:
                raise refused
            raise NotFound(f"ConnectyCube user {link.cube_id} no longer exists.")
        session, version, password = _password_login(link, current, client)
        if not _is_ours(link, session, client):
            raise NotFound(f"ConnectyCube user {link.cube_id} no longer exists.")
        _owe_identity(link, current)
    if version != mapping.current_password_version():
        version = _move_to_current_password(link, client, session, password, version)
    record_password_version(link, version)
    return session


def _is_ours(link: CubeUser, session: Session, client: ConnectyCubeClient) -> bool:
    """Whether a password login landed on the link's user. One ConnectyCube auto-created for
    it (the login named nobody; maybe under our old id, after a reset) is deleted again."""
    user = session.user
    fresh = (
        user is not None
        and not user.external_id
        and (
            user.created_at is None
            or session.created_at is None
            or user.created_at >= session.created_at - AUTO_CREATED_WITHIN
        )
    )
    if fresh:
        client.as_user(session).delete_self()
        return False
    return link.cube_id is None or session.user_id == link.cube_id


@hide_secrets
def _password_login(
    link: CubeUser, login: str, client: ConnectyCubeClient
) -> tuple[Session, int, str]:
    """Log in under ``login`` with the derived passwords, the likeliest first; returns the
    session and the version and password that worked."""
    candidates = mapping.password_candidates(link.external_id, link.password_version or None)
    for tries, (version, password) in enumerate(candidates, start=1):
        try:
            session = client.create_user_session(login=login, password=password)
        except SessionExpired:
            raise
        except AuthenticationError:
            if tries == len(candidates):
                raise
        else:
            return session, version, password
    raise AssertionError("unreachable")  # pragma: no cover


def _renamed_login(link: CubeUser, client: ConnectyCubeClient) -> str | None:
    """The remote user's current login when it differs from the owned one, else None."""
    if link.cube_id is None:
        return None
    current = client.get_user(link.cube_id).login
    return current if current and current != link.login else None


def _owe_identity(link: CubeUser, current: str) -> None:
    """The user renamed their remote login (our password proved it is theirs): make a synced
    row owed again, so the sweep's push re-asserts the login the link owns."""
    logger.warning(
        "ConnectyCube user %s of %s was renamed remotely to %r; the next push restores %r.",
        link.cube_id,
        link.external_id,
        current,
        link.login,
    )
    owed.mark_repush(
        CubeUser.objects.filter(pk=link.pk, state=CubeUser.State.SYNCED), timezone.now()
    )


@hide_secrets
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


# ---- CIdP ------------------------------------------------------------------------------------


def _login_cidp(link: CubeUser, client: ConnectyCubeClient) -> Session:
    """Log in through our own identity provider; ConnectyCube creates the user on first use.

    ConnectyCube identifies CIdP users by the verifier's ``uid`` (the link's ``external_id``),
    so a remote user created by an earlier password-mode push is found again, not duplicated.
    """
    if link.user_id is None:  # a deleted local user: log in only to delete the remote one
        return client.create_cidp_session(make_tombstone_token(link.external_id))
    if link.cube_id is None and not identity.is_minted(link.external_id):
        # A pre-minting id (the bare pk) that never got a remote user: anyone could have put it
        # on an account of theirs, so ConnectyCube's answer for it would prove nothing.
        _replace_external_id(link)
    session = client.create_cidp_session(make_login_token(link.user_id))
    if session.user_id is None or session.user_id == link.cube_id:
        return session
    if link.cube_id is not None:
        _discard(client, session)
        if still_ours(link, client):
            raise SyncConflict(
                f"ConnectyCube logged external id {link.external_id!r} in as user "
                f"{session.user_id}, but this link's user is {link.cube_id}, which still "
                "carries it: two ConnectyCube users carry this external id. Clear it on "
                f"ConnectyCube user {session.user_id}, then re-sync local user {link.user_id} "
                "from the admin."
            )
        # Our user is gone (or no longer carries our id) and its external id has been readable
        # by anyone: start afresh under a new one.
        _replace_external_id(link)
        session = client.create_cidp_session(make_login_token(link.user_id))
    _adopt_cidp_user(link, session)
    return session


def _replace_external_id(link: CubeUser) -> None:
    old = link.external_id
    forget_remote_user(link)
    logger.warning("Replaced external id %r of local user %s by a minted one", old, link.user_id)


def _adopt_cidp_user(link: CubeUser, session: Session) -> None:
    remote = session.user
    if remote is not None and remote.external_id not in (None, "", link.external_id):
        raise SyncConflict(
            f"ConnectyCube answered the CIdP login of {link.external_id!r} with user "
            f"{session.user_id}, which carries external id {remote.external_id!r}; not linked."
        )
    # ConnectyCube answered for a uid nobody else knew (minted, and never on a remote user
    # before): the user is ours, and another link's claim to its id is stale (a reset remote
    # reused the id).
    cube_id = int(session.user_id or 0)
    learn(link, cube_id, remote.login if remote is not None else None)

    def write() -> None:
        CubeUser.objects.filter(pk=link.pk).update(
            cube_id=cube_id, login=link.login, updated_at=timezone.now()
        )

    try:
        with transaction.atomic():
            write()
    except IntegrityError:
        holder = other_holder(link, cube_id)
        if holder is not None:
            release_stale_claim(holder, cube_id)
        write()
    logger.info("Linked %s to ConnectyCube user %s (CIdP)", link.external_id, session.user_id)


def _discard(client: ConnectyCubeClient, session: Session) -> None:
    with contextlib.suppress(ConnectyCubeError):
        client.destroy_session(session.token)
