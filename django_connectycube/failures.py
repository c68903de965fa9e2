"""How a failed push is named and recorded: the engine's own errors and the one writer of a
link's failure state.

The sync engine, the session manager and the API all meet conflicts (a remote account that is
not provably ours, a remote id already linked to another row); they raise :class:`SyncConflict`
from here and record it with :func:`record_failure`, so a conflict always ends the same way:
state ``failed``, ``last_error`` saying what to do, and the ``user_sync_failed`` signal.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Q
from django.utils import timezone

from .client import AuthenticationError, ValidationError
from .conf import app_settings
from .models import CubeUser
from .signals import user_sync_failed

logger = logging.getLogger("django_connectycube")

__all__ = ["Busy", "SyncConflict", "describe", "record_failure"]


class Busy(Exception):
    """Owed work elsewhere blocks this push (another worker holds the user's lease, or a pending
    delete/rename of another local user still holds its login); try again in a moment."""


class SyncConflict(Exception):
    """ConnectyCube holds data that belongs to someone else; an operator has to decide."""


def record_failure(link_filter: Q, error: BaseException, *, permanent: bool) -> tuple[int, bool]:
    """Count a failed attempt; returns ``(attempts, gave_up)``.

    A permanent error, or the last allowed attempt, marks the row ``failed`` (a dead letter
    the admin can re-sync); deletes that give up stay recognisable by their null ``user``.
    """
    message = describe(error)
    now = timezone.now()
    link = CubeUser.objects.filter(link_filter).first()
    if link is None:
        return 0, True
    attempts = link.attempts + 1
    gave_up = permanent or attempts >= app_settings.TASK_MAX_ATTEMPTS
    updates: dict[str, Any] = {"attempts": attempts, "last_error": message, "updated_at": now}
    if gave_up:
        updates.update(state=CubeUser.State.FAILED, enqueued_at=None)
    CubeUser.objects.filter(pk=link.pk).update(**updates)
    if gave_up:
        link.refresh_from_db()
        logger.error("Giving up on ConnectyCube sync of %s: %s", link.external_id, message)
        user_sync_failed.send(CubeUser, link=link, error=error)
    else:
        logger.warning(
            "ConnectyCube sync of %s failed (attempt %s): %s", link.external_id, attempts, message
        )
    return attempts, gave_up


def describe(error: BaseException) -> str:
    """The ``last_error`` of a failure: what happened and what an operator can do about it."""
    if isinstance(error, ValidationError) and error.field_errors:
        details = "; ".join(f"{k}: {', '.join(v)}" for k, v in error.field_errors.items())
        return (
            f"ConnectyCube rejected the user's data ({details}). Fix the local user (or the "
            "USER_FIELDS mapping), then save it or re-sync it from the admin."
        )
    if isinstance(error, AuthenticationError):
        return (
            f"ConnectyCube refused the derived password ({error}). The remote user was not "
            "created by this site, or PASSWORD_SECRETS lost the version it was created with."
        )
    return f"{type(error).__name__}: {error}"
