"""Which local link holds a ConnectyCube id, and what a remote that forgot us does to that.

ConnectyCube never gives one id to two users of an application, until the application is wiped
(or the emulator reset): then it numbers users from the start again and knows none of our users
or session tokens, while our links still hold the old ids. So an id a link holds is only a
claim; the remote user at that id is ours only while it carries the link's ``external_id``.

* A remote id ConnectyCube has just created for one link proves every other link's claim to it
  stale: that claim is released and its user owed a push that creates it again.
* A remote id found by look-up (evidence, not proof) that another link holds is a conflict an
  operator resolves; :func:`conflict_message` says how.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from django_connectycube.client import ConnectyCubeClient, NotFound, User
from django_connectycube.models import CubeSession, CubeUser, identity

logger = logging.getLogger("django_connectycube")

__all__ = [
    "claim_guard",
    "conflict_message",
    "forget_missing",
    "forget_remote_user",
    "is_ours",
    "learn",
    "other_holder",
    "release_stale_claim",
    "remote_user_of",
    "still_ours",
]


def claim_guard() -> Any:
    """Wrap a write of remote ids so a unique-``cube_id`` ``IntegrityError`` leaves the
    connection usable: a savepoint inside a transaction; nothing in autocommit, where the one
    statement fails alone (and a BEGIN/COMMIT would double a batch's statements)."""
    if connections[router.db_for_write(CubeUser)].in_atomic_block:
        return transaction.atomic(using=router.db_for_write(CubeUser))
    return contextlib.nullcontext()


def is_ours(link: CubeUser, remote: User | None) -> bool:
    """Whether the remote user found at the link's id is still the link's: it carries the
    link's external id (without proof: a user can edit their own; a push proves it)."""
    return remote is not None and remote.external_id == link.external_id


def remote_user_of(link: CubeUser, client: ConnectyCubeClient) -> User:
    """The link's remote user, read by its id; ``NotFound`` when that id is gone or now belongs
    to another user (the remote forgot ours and gave the id to someone else)."""
    if link.cube_id is None:
        raise NotFound(f"User {link.external_id} has no ConnectyCube identity yet.")
    remote = client.get_user(link.cube_id)
    if not is_ours(link, remote):
        raise NotFound(
            f"ConnectyCube user {link.cube_id} carries external id {remote.external_id!r}, not "
            f"{link.external_id!r}: the user local user {link.external_id} had there is gone."
        )
    return remote


def still_ours(link: CubeUser, client: ConnectyCubeClient) -> bool:
    """Whether the link's remote user still exists and carries the link's external id."""
    try:
        remote_user_of(link, client)
    except NotFound:
        return False
    return True


def learn(link: CubeUser, cube_id: int, login: str | None) -> None:
    """Keep on ``link`` what ConnectyCube just said of its user, for the caller to record: its
    id, and its login (an answer may leave the login out; the one the link owns stays then)."""
    link.cube_id = cube_id
    link.login = login or link.login


def other_holder(link: CubeUser, cube_id: int) -> CubeUser | None:
    """The other local link that claims this remote id, if any."""
    return CubeUser.objects.filter(cube_id=cube_id).exclude(pk=link.pk).first()


def release_stale_claim(holder: CubeUser, cube_id: int) -> None:
    """Forget a claim ConnectyCube proved stale; a live local user is owed a re-create."""
    now = timezone.now()
    note = (
        f"ConnectyCube gave id {cube_id} to another user, so this user's remote user is gone "
        "(the application was reset or wiped); it is created again on the next push."
    )
    claims = CubeUser.objects.filter(pk=holder.pk, cube_id=cube_id)
    if holder.user_id is None or holder.state in (CubeUser.State.DELETING, CubeUser.State.DELETED):
        # A tombstone: its remote user is gone already; its delete finds nothing to do.
        claims.update(cube_id=None, updated_at=now)
    else:
        forget_missing(holder, cube_id, note, now)
    logger.warning("Local user %s lost ConnectyCube id %s: %s", holder.external_id, cube_id, note)


def forget_missing(link: CubeUser, cube_id: int, note: str, now: Any, **values: Any) -> int:
    """A live link's remote user at ``cube_id`` is gone: owed a create at once, under a new
    external id (the old one is readable by anyone and may be claimed by now; see identity),
    its stored session dropped. Nothing happens when the link's claim changed meanwhile."""
    claims = CubeUser.objects.filter(pk=link.pk, cube_id=cube_id, external_id=link.external_id)
    changed = claims.forget_remote(
        note, now, external_id=identity.mint_external_id(), withheld={}, login="", **values
    )
    if changed and link.user_id is not None:
        CubeSession.objects.filter(user_id=link.user_id).delete()
    return int(changed)


def forget_remote_user(link: CubeUser, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Unlink a link whose remote user is gone and mint it a new external id, recorded at once
    (a crash before the new user is recorded must find it again by that id, not make another).

    Returns ``fields`` with the new external id.
    """
    link.cube_id = None
    link.external_id = identity.mint_external_id()
    link.withheld = {}
    link.login = link.avatar_uid = link.avatar_digest = ""
    CubeUser.objects.filter(pk=link.pk).update(
        cube_id=None,
        external_id=link.external_id,
        withheld={},
        login="",
        pushed_digest="",
        avatar_uid="",
        avatar_digest="",
        updated_at=timezone.now(),
    )
    return {**(fields or {}), "external_id": link.external_id}


def conflict_message(link: CubeUser, cube_id: int, holder: CubeUser | None) -> str:
    """The ``last_error`` of a link whose remote user's id another local link claims."""
    other = f"local user {holder.external_id}" if holder is not None else "another local user"
    return (
        f"ConnectyCube user {cube_id} carries the external id of local user "
        f"{link.external_id}, but {other} is linked to ConnectyCube id {cube_id}. Re-sync "
        f"{other} from the admin first (if ConnectyCube forgot its users, as after a reset or "
        "a wiped application, that creates its remote user again; if not, it writes its own "
        f"external id back to ConnectyCube user {cube_id}), then re-sync this user."
    )
