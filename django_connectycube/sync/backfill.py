"""The batched create path of a backfill: many new users, a handful of database statements.

:func:`.sync.push_user` is built for one user at a time (a task per save) and pays six database
round trips per user: link look-up, lease, re-read, user read, record, lease release. A backfill
of users that have no ConnectyCube identity yet spent most of its time waiting on those.
Here a chunk of such users (one per ``GET /users/v2`` page) costs:

1. ONE conditional ``UPDATE`` taking the lease on every free row of the chunk, stamped with a
   lease time no other worker uses, so
2. ONE ``SELECT`` (links joined with their users) returns exactly the rows this batch owns;
3. ONE ``GET /users/v2?external_id[in][]=…`` saying which of them ConnectyCube lacks;
4. per user, only the ``POST /users`` (run in the caller's thread pool), through the very
   create-or-adopt code of :func:`.sync.push_user`, so duplicate/adopt/conflict handling and the
   avatar upload stay identical;
5. ONE ``UPDATE`` per recorded version (normally one per chunk) writing every outcome with
   ``CASE … WHEN pk`` and releasing the leases, with the semantics of ``sync._record_success``:
   ``synced_version`` is the version read in step 2, the row only turns ``synced`` if no save
   bumped ``dirty_version`` meanwhile, and a delete that arrived meanwhile wins.

The guarantees of the per-user path hold: the lease keeps other workers away, the external-id
look-up (and, behind it, the remote login uniqueness) keeps a user from being created twice, and
a save during the batch keeps the row owed. Rows the batch cannot lease (another worker has them,
or they already have a remote identity) are left to the caller's per-user path.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, models
from django.db.models import F, Q, Value
from django.db.models.expressions import Expression
from django.utils import timezone

from django_connectycube.client import ConnectyCubeClient, ConnectyCubeError
from django_connectycube.conf import app_settings
from django_connectycube.errors import SyncConflict
from django_connectycube.models import CubeUser
from django_connectycube.signals import user_synced
from django_connectycube.sync import adoption, breaker, lease, mapping, policy, remote_ids
from django_connectycube.sync import push as sync

logger = logging.getLogger("django_connectycube")

__all__ = ["Batch", "claim"]

#: Users per batch: one ``GET /users/v2`` page, which is also the look-up's limit.
BATCH_SIZE = 100
#: A batch holds its leases until its last user is done; never longer than this many leases.
MAX_LEASE_FACTOR = 5


@dataclass
class _Done:
    """What one user's create left to record (in memory until the batch's bulk UPDATE)."""

    link: CubeUser
    version: int
    digest: str
    outcome: str


@dataclass
class Batch:
    """Leased links of one chunk, and the bookkeeping that records them all at once.

    ``links`` are the rows this batch owns (each with ``.user`` loaded); ``others`` the user pks
    of the chunk it does not own, which the caller pushes one by one with :func:`.sync.push_user`.
    Call :meth:`run` once per link, from any thread; the call that finishes the batch records it.
    """

    lease: lease.Lease
    links: list[CubeUser]
    others: list[Any]
    absent: frozenset[str] = frozenset()
    client: ConnectyCubeClient | None = None
    _done: list[_Done] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _remaining: int = 0

    def __post_init__(self) -> None:
        self._remaining = len(self.links)

    @property
    def token(self) -> datetime:
        """The batch's lease end (it moves when the lease is renewed)."""
        return self.lease.token

    def run(self, link: CubeUser) -> str:
        """Create (or adopt) one leased user remotely; returns what :func:`.sync.push_user` would,
        or what the failure policy made of its failure (``retrying``, ``failed`` …).

        Failures are recorded on the row at once (the rare path, one user at a time); successes
        wait in memory for the batch's bulk ``UPDATE``, done by whichever call finishes last.
        """
        try:
            with lease.held(self.lease):
                outcome = policy.attempt(Q(pk=link.pk), lambda: self._push(link)).outcome
        finally:
            with self._lock:
                self._remaining -= 1
                last = self._remaining == 0
            if last:
                self.record()
        return outcome

    def _push(self, link: CubeUser) -> str:
        # The create branch of sync.push_user, on a link this batch has leased and read.
        client = self.client
        assert client is not None
        breaker.watch(lease.watch(client))
        user = link.user
        version = link.dirty_version
        fields = mapping.get_user_fields(user, link.external_id)
        digest = mapping.fields_digest(fields)
        _, outcome = adoption.establish(link, fields, client, self.absent)
        # An avatar is uploaded here, under this batch's lease, exactly as push_user does it:
        # never skipped, never recorded as synced before it is on ConnectyCube.
        sync._push_avatar_locked(link, user, client)
        with self._lock:
            self._done.append(_Done(link, version, digest, outcome))
        return outcome

    def record(self) -> None:
        """Write every success of the batch and release all of its leases, in a few statements.

        One ``UPDATE`` per ``(version, password version)`` group (a backfill has one), then one
        releasing the leases of rows that did not succeed, if any. When ConnectyCube forgot us
        (a reset or wiped application) and handed out ids other links still hold, the group's
        ``UPDATE`` fails on the unique ``cube_id`` and is written again once those claims are
        settled (:func:`_settle_claims`).
        """
        with self._lock:
            done, self._done = self._done, []
        now = timezone.now()
        groups: dict[tuple[int, int], list[_Done]] = defaultdict(list)
        for item in done:
            groups[(item.version, item.link.password_version)].append(item)
        for (version, password_version), group in groups.items():
            try:
                with remote_ids.claim_guard():
                    self._write(group, version, password_version, now)
                continue
            except IntegrityError:  # a remote id another link holds (a remote that forgot us)
                kept = _settle_claims(group)
            done = [item for item in done if item in kept or item not in group]
            if kept:
                self._write(kept, version, password_version, now)
        succeeded = {item.link.pk for item in done}
        rest = [link.pk for link in self.links if link.pk not in succeeded]
        if rest:
            CubeUser.objects.filter(pk__in=rest, lease_until=self.token).update(lease_until=None)
        for item in done:
            user_synced.send(CubeUser, link=item.link, created=item.outcome == policy.CREATED)

    def _write(self, items: list[_Done], version: int, password_version: int, now: Any) -> None:
        """One ``UPDATE`` recording these successes and releasing their leases."""
        CubeUser.objects.filter(pk__in=[item.link.pk for item in items]).record_pushed(
            version,
            now,
            cube_id=_per_row(items, lambda i: i.link.cube_id, models.PositiveBigIntegerField()),
            login=_per_row(items, lambda i: i.link.login, models.CharField()),
            withheld=_per_row(items, lambda i: i.link.withheld, models.JSONField()),
            password_version=password_version,
            avatar_uid=_per_row(items, lambda i: i.link.avatar_uid, models.CharField()),
            avatar_digest=_per_row(items, lambda i: i.link.avatar_digest, models.CharField()),
            pushed_digest=_per_row(items, lambda i: i.digest, models.CharField()),
            lease=self.token,
        )


def _settle_claims(items: list[_Done]) -> list[_Done]:
    """The items still to record once the remote ids other links hold are settled: a claim to
    an id ConnectyCube just created for one of ours is released, any other is that item's
    recorded conflict (the rare path, so one row at a time)."""
    by_id = {item.link.cube_id: item for item in items}
    kept = list(items)
    holders = CubeUser.objects.filter(cube_id__in=list(by_id)).exclude(
        pk__in=[item.link.pk for item in items]
    )
    for holder in holders:
        item = by_id[holder.cube_id]
        if item.outcome == policy.CREATED:
            remote_ids.release_stale_claim(holder, holder.cube_id)
        else:
            message = remote_ids.conflict_message(item.link, holder.cube_id, holder)
            policy.record(Q(pk=item.link.pk), SyncConflict(message))
            kept.remove(item)
    return kept


def _per_row(items: list[_Done], value: Any, output_field: models.Field[Any, Any]) -> Any:
    """The column's new value per link (:class:`_ByLink`); a plain value when all agree (the
    avatar columns of a backfill without avatars), which keeps the statement small."""
    values = [value(item) for item in items]
    if all(v == values[0] for v in values):
        return Value(values[0], output_field=output_field)
    return _ByLink([(item.link.pk, v) for item, v in zip(items, values, strict=True)], output_field)


class _ByLink(Expression):
    """``CASE pk WHEN … THEN … END``: a column's value per link, what ``Case(When(pk=…))``
    compiles to, without a ``When`` tree per row. The backfill benchmark's profile put
    resolving and compiling those trees above the rest of a chunk's database work."""

    def __init__(self, values: list[tuple[Any, Any]], output_field: models.Field[Any, Any]):
        super().__init__(output_field=output_field)
        self.values = values
        self.key: Any = None

    def resolve_expression(self, *args: Any, **kwargs: Any) -> _ByLink:
        resolved = super().resolve_expression(*args, **kwargs)
        resolved.key = F("pk").resolve_expression(*args, **kwargs)
        return resolved

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        key_sql, params = compiler.compile(self.key)
        params = list(params)
        key_field, field = self.key.output_field, self.output_field
        for pk, value in self.values:
            params.append(key_field.get_db_prep_value(pk, connection))
            params.append(field.get_db_prep_save(value, connection))
        whens = " ".join(["WHEN %s THEN %s"] * len(self.values))
        return f"CASE {key_sql} {whens} END", params


def claim(user_pks: Iterable[Any], *, client: ConnectyCubeClient, concurrency: int = 1) -> Batch:
    """Lease this chunk's users that still need creating, read them, and ask ConnectyCube which
    it lacks: three round trips for the chunk, whatever its size.

    The lease lasts one ``LEASE_SECONDS`` per user a pool thread will push in turn (capped),
    since every row stays leased until the whole batch is recorded; leases end at the record.
    Like a single push's, it is renewed before every HTTP attempt once a third of it passed.
    """
    pks = list(user_pks)
    now = timezone.now()
    turns = math.ceil(len(pks) / max(concurrency, 1))
    seconds = app_settings.LEASE_SECONDS * min(max(turns, 1), MAX_LEASE_FACTOR)
    token = lease.token(now, seconds)
    candidates = CubeUser.objects.filter(
        user_id__in=pks, cube_id__isnull=True, state=CubeUser.State.PENDING
    )
    claimed = candidates.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
        lease_until=token
    )
    links: list[CubeUser] = []
    try:
        if claimed:
            links = list(candidates.filter(lease_until=token).select_related("user").order_by("pk"))
        absent = _remote_absent(client, [link.external_id for link in links])
    except BaseException:
        # Nobody will run or record this batch: hand its rows back instead of letting them
        # wait for the (long) batch lease to expire.
        CubeUser.objects.filter(user_id__in=pks, lease_until=token).update(lease_until=None)
        raise
    mine = {link.user_id for link in links}
    others = [pk for pk in pks if pk not in mine]
    held = lease.Lease(Q(user_id__in=pks), token, seconds)
    return Batch(lease=held, links=links, others=others, absent=absent, client=client)


def _remote_absent(client: ConnectyCubeClient, external_ids: list[str]) -> frozenset[str]:
    """The external ids ConnectyCube does not know, in one call; empty when unsure.

    Lets each create skip its own look-up; on any error (or a page too short to be sure) every
    create looks up for itself, which is slower but just as safe.
    """
    if not external_ids:
        return frozenset()
    try:
        page = client.search_users(external_id__in=external_ids, limit=BATCH_SIZE)
    except ConnectyCubeError:
        return frozenset()
    if page.total > len(page.items):
        return frozenset()
    return frozenset(external_ids) - {str(user.external_id) for user in page.items}
