"""The durable record of what is still owed to ConnectyCube, written in the saving transaction.

A ``CubeUser`` row that is owed (``dirty_version`` ahead of ``synced_version``, or a tombstone)
is the to-do item: the database, not the broker, is the source of truth for pending work. Every
part of the engine that decides a user is owed something says so here: a local change
(:func:`mark_dirty`), a local delete (:func:`mark_deleted`), a remote copy that drifted
(:func:`mark_repush`). Users without any link are found by :mod:`.unlinked`; handing the work to
Celery is :mod:`.enqueue`'s job; the row's transitions themselves are :mod:`.models.state`'s.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, router, transaction
from django.utils import timezone

from django_connectycube.models import CubeUser

__all__ = ["mark_deleted", "mark_dirty", "mark_repush"]


def _db(using: str | None) -> str:
    return using or router.db_for_write(CubeUser)


def mark_dirty(user: Any, *, using: str | None = None, created: bool = False) -> None:
    """Record, in the caller's transaction, that this user's latest state must be pushed.

    A user without a link gets a new one with a freshly minted external id, never an old
    tombstone's: a new user who happens to get a deleted user's pk is someone else.
    """
    db = _db(using)
    now = timezone.now()
    if not created and CubeUser.objects.mark_user_owed(user.pk, now, using=db):
        return
    try:
        with transaction.atomic(using=db):
            CubeUser.objects.using(db).create(user=user, dirty_version=1, enqueued_at=now)
    except IntegrityError:
        # Another process linked the user first: that link is the user's.
        CubeUser.objects.using(db).filter(user_id=user.pk).mark_owed(now)


def mark_deleted(user_pk: Any, *, using: str | None = None) -> int | None:
    """Turn the user's link into a tombstone owing a remote delete; returns its id, if any.

    Call it while the user row still exists (the ``pre_delete`` receiver does, inside the
    delete's transaction): the link is found by its user, never by an id a later user could
    share.
    """
    db = _db(using)
    now = timezone.now()
    links = CubeUser.objects.using(db).filter(user_id=user_pk).exclude(state=CubeUser.State.DELETED)
    link_id = links.values_list("pk", flat=True).first()
    if link_id is None:
        return None
    CubeUser.objects.using(db).filter(pk=link_id).mark_deleting(now)
    return link_id


def mark_repush(links: Any, now: Any, **values: Any) -> int:
    """Make these links owed a push that re-sends every field (forgetting the digest of the last
    one): ConnectyCube's copy was seen to differ from what the link owns (a remote rename, drift
    found by the verification), so an unchanged local user must still be pushed. Returns how
    many rows changed; ``values`` are written with it."""
    return int(links.mark_owed(now, pushed_digest="", enqueued_at=None, **values))
