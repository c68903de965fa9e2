"""Receivers that record user changes in the saving transaction and enqueue them after commit.

No receiver here talks to ConnectyCube: a request that saves a user does one small extra write and
nothing else; Celery does the rest once the transaction is committed (a rollback sends nothing).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete

from django_connectycube.conf import app_settings
from django_connectycube.models import CubeSession
from django_connectycube.sync import enqueue, mapping, owed

__all__ = ["connect_receivers"]


def user_saved(
    sender: type,
    instance: Any,
    created: bool,
    raw: bool = False,
    using: str | None = None,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    """Mark the user owed and enqueue its push after commit (fixture loads are skipped)."""
    if raw or not app_settings.SYNC_ENABLED:
        return
    if not created and not mapping.needs_push(sender, update_fields):
        return
    owed.mark_dirty(instance, using=using, created=created)
    transaction.on_commit(partial(enqueue.push_after_commit, instance.pk, using=using), using=using)


def user_deleting(sender: type, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    """Turn the link into a tombstone and enqueue the remote delete after commit.

    ``pre_delete``, inside the delete's transaction: the link is still attached to the user, so
    it is found by its user and never by an id a later user could share (a reused pk). A
    rolled-back delete rolls the tombstone back with it.
    """
    if not app_settings.SYNC_ENABLED:
        return
    link_id = owed.mark_deleted(instance.pk, using=using)
    if link_id is not None:
        transaction.on_commit(
            partial(enqueue.delete_after_commit, link_id, using=using), using=using
        )


def user_deleted(sender: type, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    """Drop the deleted user's stored session rows, whoever wrote them meanwhile."""
    # A worker may have stored a session for this user after Django collected the cascade:
    # that row would fail the deferred foreign key and with it the caller's delete.
    CubeSession.objects.using(using).filter(user_id=instance.pk).delete()


def connect_receivers() -> None:
    """Connect to the project's user model, whatever ``AUTH_USER_MODEL`` names."""
    model = settings.AUTH_USER_MODEL
    post_save.connect(user_saved, sender=model, dispatch_uid="django_connectycube.user_saved")
    pre_delete.connect(
        user_deleting, sender=model, dispatch_uid="django_connectycube.user_deleting"
    )
    post_delete.connect(user_deleted, sender=model, dispatch_uid="django_connectycube.user_deleted")
