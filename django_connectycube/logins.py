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

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from . import identity, mapping
from .client import (
    AuthenticationError,
    ConnectyCubeClient,
    ConnectyCubeError,
    NotFound,
    Session,
    SessionExpired,
)
from .conf import ConfigurationError, app_settings
from .failures import SyncConflict
from .models import CubeUser

logger = logging.getLogger("django_connectycube")

__all__ = ["AUTH_MODE_CIDP", "AUTH_MODE_PASSWORD", "auth_mode", "login_link", "remote_exists"]

AUTH_MODE_PASSWORD = "password"  # noqa: S105 - a mode name, not a secret
AUTH_MODE_CIDP = "cidp"


def auth_mode() -> str:
    """The configured ``AUTH_MODE``, validated."""
    mode = app_settings.AUTH_MODE
    if mode not in (AUTH_MODE_PASSWORD, AUTH_MODE_CIDP):
        raise ConfigurationError(
            f'CONNECTYCUBE["AUTH_MODE"] must be "{AUTH_MODE_PASSWORD}" or "{AUTH_MODE_CIDP}", '
            f"got {mode!r}."
        )
    return str(mode)


def login_link(link: CubeUser, client: ConnectyCubeClient) -> Session:
    """A new remote session for a mirrored user: derived password, or a CIdP token."""
    if auth_mode() == AUTH_MODE_CIDP:
        return _login_cidp(link, client)
    if not link.login:
        if link.cube_id is None:
            raise NotFound(f"User {link.external_id} has no ConnectyCube identity yet.")
        link.login = client.get_user(link.cube_id).login or ""
    try:
        session, version, password, tries = _password_login(link, link.login, client)
    except AuthenticationError:
        renamed = _renamed_login(link, client)
        if renamed is None:
            raise
        session, version, password, tries = _password_login(link, renamed, client)
    if link.cube_id is not None and session.user_id != link.cube_id:
        stray = session.user
        if stray is not None and not stray.external_id:
            # The login no longer named our user and ConnectyCube auto-created an empty one in
            # its place: remove it again.
            client.as_user(session).delete_self()
        renamed = _renamed_login(link, client)  # NotFound: our user is really gone
        if renamed is None:
            raise NotFound(f"ConnectyCube user {link.cube_id} no longer exists.")
        session, version, password, tries = _password_login(link, renamed, client)
        if session.user_id != link.cube_id:
            raise NotFound(f"ConnectyCube user {link.cube_id} no longer exists.")
    if tries > 1 or version != mapping.current_password_version():
        _move_to_current_password(link, client, session, password)
    return session


def _password_login(
    link: CubeUser, login: str, client: ConnectyCubeClient
) -> tuple[Session, int, str, int]:
    """Log in under ``login`` with the derived passwords, newest likely first."""
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
            return session, version, password, tries
    raise AssertionError("unreachable")  # pragma: no cover


def _renamed_login(link: CubeUser, client: ConnectyCubeClient) -> str | None:
    """The remote user's current login when the user changed it on ConnectyCube, else None.

    Makes a synced row owed again, so the next push re-asserts the login the link owns.
    """
    if link.cube_id is None:
        return None
    current = client.get_user(link.cube_id).login
    if not current or current == link.login:
        return None
    logger.warning(
        "ConnectyCube user %s of %s was renamed remotely to %r; logging in under it, the next "
        "push restores %r.",
        link.cube_id,
        link.external_id,
        current,
        link.login,
    )
    CubeUser.objects.filter(pk=link.pk, state=CubeUser.State.SYNCED).update(
        state=CubeUser.State.PENDING,
        dirty_version=F("dirty_version") + 1,
        pushed_digest="",
        enqueued_at=None,
        updated_at=timezone.now(),
    )
    return current


def _move_to_current_password(
    link: CubeUser, client: ConnectyCubeClient, session: Session, old_password: str
) -> None:
    """After a login with a rotated-out secret, set the password derived from the current one."""
    version = mapping.current_password_version()
    new_password = mapping.derive_password(link.external_id, version)
    try:
        client.as_user(session).update_user(
            session.user_id, password=new_password, old_password=old_password
        )
    except ConnectyCubeError as exc:  # the login worked; moving on can wait for the next one
        logger.warning("Could not move %s to the current password: %s", link.external_id, exc)
        return
    link.password_version = version
    CubeUser.objects.filter(pk=link.pk).update(password_version=version)
    logger.info("Moved %s to password version %s", link.external_id, version)


# ---- CIdP ------------------------------------------------------------------------------------


def _login_cidp(link: CubeUser, client: ConnectyCubeClient) -> Session:
    """Log in through our own identity provider; ConnectyCube creates the user on first use.

    ConnectyCube identifies CIdP users by the verifier's ``uid`` (the link's ``external_id``),
    so a remote user created by an earlier password-mode push is found again, not duplicated.
    """
    from .cidp import make_login_token, make_tombstone_token

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
        if remote_exists(client, link.cube_id):
            raise SyncConflict(
                f"ConnectyCube logged external id {link.external_id!r} in as user "
                f"{session.user_id}, but this link's user is {link.cube_id}, which still "
                "exists: someone else carries this external id. Clear it on ConnectyCube user "
                f"{session.user_id}, then re-sync local user {link.user_id} from the admin."
            )
        # Our user is gone and its external id has been readable by anyone: start afresh.
        _replace_external_id(link)
        session = client.create_cidp_session(make_login_token(link.user_id))
    _adopt_cidp_user(link, session)
    return session


def _replace_external_id(link: CubeUser) -> None:
    from .sync import forget_remote_user

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
    other = CubeUser.objects.filter(cube_id=session.user_id).exclude(pk=link.pk).first()
    conflict = SyncConflict(
        f"ConnectyCube user {session.user_id} is already linked to "
        f"{other.external_id if other else 'another link'!r}, so the CIdP login of "
        f"{link.external_id!r} was not linked to it; an operator has to find out whose it is."
    )
    if other is not None:
        raise conflict
    remote_login = remote.login if remote is not None else None
    try:
        with transaction.atomic():
            CubeUser.objects.filter(pk=link.pk).update(
                cube_id=session.user_id,
                login=remote_login or link.login,
                updated_at=timezone.now(),
            )
    except IntegrityError as exc:
        raise conflict from exc
    logger.info("Linked %s to ConnectyCube user %s (CIdP)", link.external_id, session.user_id)
    link.cube_id = session.user_id
    link.login = remote_login or link.login


def remote_exists(client: ConnectyCubeClient, cube_id: int) -> bool:
    """Whether ConnectyCube still has the user with this id."""
    try:
        client.get_user(cube_id)
    except NotFound:
        return False
    return True


def _discard(client: ConnectyCubeClient, session: Session) -> None:
    with contextlib.suppress(ConnectyCubeError):
        client.destroy_session(session.token)
