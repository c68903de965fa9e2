"""The state machine of a user's link (:class:`~.models.CubeUser`): every change of its ``state``.

Why one place: the state of a link used to be written from five modules, each with its own idea
of what else goes with it (the attempt counter, the error, the due time), and one of them read
the row before writing it, so two concurrent failures lost one. Here each transition is one
conditional ``UPDATE`` built from ``F()`` expressions, safe to run from any number of workers at
once; nothing outside this module writes ``state`` (a test holds the package to that).

::

    (save) ──mark_owed──▶ pending ──record_pushed──▶ synced ──mark_owed──▶ pending …
                            │  ▲ record_failure (transient: due again later)
                            │  └──────────┘
                            └─ record_failure (permanent, or RETRY_HORIZON passed) ─▶ failed
    (delete) ─mark_deleting─▶ deleting ──record_deleted──▶ deleted
    failed ──resync / mark_owed──▶ pending (or deleting for a tombstone)
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db import connections, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.db.models.sql import UpdateQuery
from django.utils.translation import gettext_lazy as _

__all__ = ["CubeUserQuerySet", "State", "state_after_push"]


class State(models.TextChoices):
    PENDING = "pending", _("pending")  # local changes not yet on ConnectyCube
    SYNCED = "synced", _("synced")  # ConnectyCube has the latest version
    FAILED = "failed", _("failed")  # gave up; see last_error, re-sync from the admin
    DELETING = "deleting", _("deleting")  # local user gone, remote delete owed
    DELETED = "deleted", _("deleted")  # remote user deleted; the row is a tombstone


OWED = (State.PENDING, State.DELETING)

#: Cleared by every transition that starts or ends a run of failures.
_FRESH: dict[str, Any] = {"attempts": 0, "failing_since": None, "next_attempt_at": None}


def state_after_push(version: int) -> Case:
    """The state a row gets once ``version`` is on ConnectyCube, decided inside the ``UPDATE``:
    a delete that arrived meanwhile wins; a save that arrived meanwhile keeps the row owed."""
    return Case(
        When(state=State.DELETING, then=Value(State.DELETING)),
        When(dirty_version=version, then=Value(State.SYNCED)),
        default=Value(State.PENDING),
    )


def _unless(gives_up: Q, when: datetime | None) -> Case | None:
    """A due time, or none for a row that gives up (no ``CASE`` of two NULLs: PostgreSQL reads
    that as text)."""
    if when is None:
        return None
    field: models.DateTimeField[Any, Any] = models.DateTimeField()
    return Case(When(gives_up, then=Value(None)), default=Value(when), output_field=field)


def _mark_owed_values(now: datetime) -> dict[str, Any]:
    return {
        "dirty_version": F("dirty_version") + 1,
        "state": State.PENDING,
        "enqueued_at": now,
        "updated_at": now,
        **_FRESH,
    }


class CubeUserQuerySet(models.QuerySet[Any]):
    """Links, with the transitions of their state as atomic bulk updates."""

    def owed(self) -> CubeUserQuerySet:
        """Rows with work still to push: a create/update or a remote delete."""
        return self.filter(state__in=OWED)

    def retry_due(self, now: datetime) -> CubeUserQuerySet:
        """Rows with no retry waiting for a later time than ``now``."""
        return self.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))

    def due(self, now: datetime, stale: datetime) -> CubeUserQuerySet:
        """Owed rows the sweep should hand to Celery: due (:meth:`retry_due`) and not in
        flight (never enqueued, or enqueued before ``stale``); the ones never enqueued first,
        on every database (PostgreSQL sorts NULLs last by default)."""
        return (
            self.owed()
            .retry_due(now)
            .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
            .order_by(F("enqueued_at").asc(nulls_first=True), "pk")
        )

    def mark_enqueued(self, now: datetime, *, lost_before: datetime, note: str) -> int:
        """Handed to Celery by the sweep. A row last handed over before ``lost_before`` got no
        outcome from any worker: ``note`` says so in ``last_error``, in the same statement (a
        killed worker or a lost message writes nothing itself)."""
        lost = When(enqueued_at__lt=lost_before, then=Value(note))
        return self.update(
            enqueued_at=now,
            last_error=Case(lost, default=F("last_error"), output_field=models.TextField()),
        )

    # ---- local changes --------------------------------------------------------------------

    def mark_owed(self, now: datetime, **values: Any) -> int:
        """A new local version to push (a save, an operator's re-sync): ``pending`` again, a
        fresh run of attempts, enqueued now (the caller enqueues after commit)."""
        return self.update(**{**_mark_owed_values(now), **values})

    def mark_user_owed(self, user_pk: Any, now: datetime, *, using: str) -> int:
        """``filter(user_id=user_pk).mark_owed(now)``: the save path's only write.

        The statement is the one the ORM compiles for that call, compiled once per database
        and run with this call's values: compiling it on every save cost more than running it
        (``python -m benchmarks.save_overhead``; see the README's Performance section).
        """
        connection = connections[using]
        compiled = _MARK_OWED.get((using, connection.vendor))
        if compiled is None:
            compiled = _compile_mark_owed(self.model, using)
            _MARK_OWED[(using, connection.vendor)] = compiled
        sql, params, now_at, pk_at = compiled
        values = list(params)
        when = self.model._meta.get_field("updated_at").get_db_prep_value(now, connection)
        pk = self.model._meta.get_field("user").get_db_prep_value(user_pk, connection)
        for index in now_at:
            values[index] = when
        for index in pk_at:
            values[index] = pk
        with transaction.mark_for_rollback_on_error(using=using), connection.cursor() as cursor:
            cursor.execute(sql, values)
            return int(cursor.rowcount)

    def mark_deleting(self, now: datetime) -> int:
        """The local user is gone: the row becomes a tombstone owing the remote delete."""
        return self.exclude(state=State.DELETED).update(
            state=State.DELETING,
            dirty_version=F("dirty_version") + 1,
            enqueued_at=now,
            updated_at=now,
            **_FRESH,
        )

    def resync(self, now: datetime, *, bump: bool = False) -> int:
        """Owed again whatever happened (failed rows included); tombstones owe their delete.

        The fields are pushed again even if they did not change locally (the digest is
        cleared): a re-sync checks the remote user rather than trusting the last push.
        ``bump`` also counts a new local version (the sync command's ``--all``).
        """
        values: dict[str, Any] = {
            "state": Case(
                When(user__isnull=True, then=Value(State.DELETING)),
                default=Value(State.PENDING),
            ),
            "pushed_digest": "",
            "enqueued_at": now,
            "updated_at": now,
            **_FRESH,
        }
        if bump:
            values["dirty_version"] = F("dirty_version") + 1
        return self.exclude(state=State.DELETED).update(**values)

    def forget_remote(self, note: str, now: datetime, **values: Any) -> int:
        """The remote user of a live link is gone (ConnectyCube forgot it): owed a create, at
        once (``enqueued_at`` cleared, so the sweep takes it first)."""
        return self.update(
            cube_id=None,
            pushed_digest="",
            avatar_uid="",
            avatar_digest="",
            dirty_version=F("dirty_version") + 1,
            state=State.PENDING,
            last_error=note,
            enqueued_at=None,
            updated_at=now,
            **_FRESH,
            **values,
        )

    # ---- outcomes of a push ---------------------------------------------------------------

    def record_pushed(
        self, version: int, now: datetime, *, lease: datetime | None = None, **values: Any
    ) -> int:
        """``version`` is on ConnectyCube: ``synced``, unless a save or a delete came since.

        ``lease``: the token of the lease the push ran under, which ends in this statement on
        the rows that still carry it (a row another worker took keeps that worker's lease);
        the push's own release then has nothing left to do.
        """
        if lease is not None:
            values["lease_until"] = Case(
                When(lease_until=lease, then=Value(None)),
                default=F("lease_until"),
                output_field=models.DateTimeField(),
            )
        return self.update(
            synced_version=version,
            state=state_after_push(version),
            last_error="",
            last_synced_at=now,
            updated_at=now,
            **_FRESH,
            **values,
        )

    def record_deleted(self, now: datetime) -> int:
        """The remote user of a tombstone is deleted (or was gone already)."""
        return self.filter(state=State.DELETING).update(
            state=State.DELETED,
            synced_version=F("dirty_version"),
            last_error="",
            last_synced_at=now,
            updated_at=now,
            **_FRESH,
        )

    def record_failure(
        self,
        message: str,
        *,
        now: datetime,
        permanent: bool,
        retry_at: datetime | None,
        enqueued_at: datetime | None,
        horizon: timedelta,
        max_attempts: int | None = None,
        count: bool = True,
    ) -> int:
        """One failed (``count``) or deferred attempt on an owed row, in one ``UPDATE``.

        A run of failures starts at the first one (``failing_since``); a permanent error, or a
        failure once ``horizon`` has passed since that start (or the ``max_attempts``-th, when
        set), marks the row ``failed``; otherwise it is due again at ``retry_at``.
        ``enqueued_at`` is the caller's message still in flight (a task's countdown), or
        ``None`` when the sweep is to hand the row over at ``retry_at``.
        """
        gives_up: Q | None = None
        if permanent:
            gives_up = Q(pk__isnull=False)
        else:
            gives_up = Q(failing_since__lte=now - horizon)
            if max_attempts and count:
                gives_up |= Q(attempts__gte=max_attempts - 1)
        values: dict[str, Any] = {
            "last_error": message,
            "failing_since": Coalesce(F("failing_since"), Value(now)),
            "updated_at": now,
            "state": Case(When(gives_up, then=Value(State.FAILED)), default=F("state")),
            "next_attempt_at": _unless(gives_up, retry_at),
            "enqueued_at": _unless(gives_up, enqueued_at),
        }
        if count:
            values["attempts"] = F("attempts") + 1
        return self.owed().update(**values)


#: Compiled ``mark_owed`` statements by (database alias, vendor): SQL, parameters, and where
#: the time and the user's pk go in them.
_MARK_OWED: dict[tuple[str, str], tuple[str, list[Any], list[int], list[int]]] = {}

_SENTINEL_TIME = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=dt_timezone.utc)


def _sentinel_pk(field: models.Field[Any, Any]) -> Any:
    internal = field.get_internal_type()
    if internal == "UUIDField":
        return uuid.UUID("00000000-0000-4000-8000-00000000beef")
    if "Integer" in internal or internal.endswith("AutoField"):
        return 987654321987
    return "django-connectycube-sentinel-pk"


def _compile_mark_owed(model: Any, using: str) -> tuple[str, list[Any], list[int], list[int]]:
    """Compile ``filter(user_id=<pk>).mark_owed(<now>)`` exactly as ``QuerySet.update`` would,
    with sentinel values whose positions in the parameters are then recorded."""
    connection = connections[using]
    user_field = model._meta.get_field("user")
    sentinel_pk = _sentinel_pk(user_field.target_field)
    queryset = model._default_manager.using(using).filter(user_id=sentinel_pk)
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(_mark_owed_values(_SENTINEL_TIME))
    query.clear_select_clause()
    sql, params = query.get_compiler(using).as_sql()
    when = model._meta.get_field("updated_at").get_db_prep_value(_SENTINEL_TIME, connection)
    pk = user_field.get_db_prep_value(sentinel_pk, connection)
    now_at = [i for i, value in enumerate(params) if value == when]
    pk_at = [i for i, value in enumerate(params) if value == pk]
    if len(now_at) != 2 or len(pk_at) != 1:
        raise RuntimeError(f"Unexpected compiled mark_owed statement: {sql} {params}")
    return sql, list(params), now_at, pk_at
