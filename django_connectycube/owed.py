"""The durable record of what is still owed to ConnectyCube, written in the saving transaction.

A ``CubeUser`` row that is owed (``dirty_version`` ahead of ``synced_version``, or a tombstone)
is the to-do item: the database, not the broker, is the source of truth for pending work. This
module only writes that record; handing the work to Celery is :mod:`.enqueue`'s job.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, router, transaction
from django.utils import timezone

from .models import CubeUser

__all__ = ["link_missing_users", "mark_deleted", "mark_dirty"]


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


def link_missing_users(*, using: str | None = None, batch_size: int = 500) -> int:
    """Create owed links for users that have none (saved before the app was installed or while
    ``SYNC_ENABLED`` was off, or in autocommit mode by a process that died between the two
    writes). It reads the whole user table, so it runs on demand (``connectycube_sync``), not
    from the periodic sweep."""
    db = _db(using)
    User = get_user_model()
    missing = (
        User._default_manager.using(db)
        .filter(connectycube__isnull=True)
        .values_list("pk", flat=True)
        .order_by("pk")
    )
    created = 0
    batch: list[CubeUser] = []
    for pk in missing.iterator(chunk_size=batch_size):
        batch.append(CubeUser(user_id=pk, dirty_version=1, enqueued_at=None))
        if len(batch) >= batch_size:
            created += len(CubeUser.objects.using(db).bulk_create(batch, ignore_conflicts=True))
            batch = []
    if batch:
        created += len(CubeUser.objects.using(db).bulk_create(batch, ignore_conflicts=True))
    return created
