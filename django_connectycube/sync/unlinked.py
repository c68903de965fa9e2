"""Users without a link, looked for a window of the user table at a time.

Every save links its user in its own transaction, so a user without a link is the exception: one
saved before the app was installed or while ``SYNC_ENABLED`` was off, or, in autocommit mode, by
a process that died between its two writes. An outer join of the whole user table finds them all
but reads every user, too much to do every minute on a big site. So the sweep looks at no more
than two windows of :data:`WINDOW` users, found by primary key:

* **the newest**: the users above a high-water mark, where primary keys grow (auto-increment).
  A user saved while ``SYNC_ENABLED`` was off is linked by the first sweep after it is back on
  (the sweep does nothing while it is off, so the mark stays below them);
* **a rolling window**, once the newest are caught up, that walks the whole table and starts
  again at its end: it finds a user committed below the mark (its transaction ended after a later
  user's did), and every user of a model whose keys do not grow (UUIDs), within one pass of
  ``users / WINDOW`` sweeps.

``connectycube_sync --dirty`` links every user above the mark (:func:`catch_up`); where keys do
not grow there is no mark, and it reads the whole table, window by window (:func:`link_all`).

A window is two statements on indexes: the key ``WINDOW`` users on, and the users in that key
range without a link (an anti-join of two index range scans). Where the search stands is the one
row of :class:`~.models.LinkScan`; two sweeps at once may both look at a window, never skip one.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import models, router
from django.db.models import Exists, Max, OuterRef

from django_connectycube.models import CubeUser, LinkScan

__all__ = ["WINDOW", "catch_up", "link_all", "pks_grow", "sweep_step"]

#: Users per window: one sweep reads at most two windows of the user table's primary key index.
WINDOW = 10_000


def pks_grow() -> bool:
    """Whether new users get ever larger primary keys (auto-increment), so a mark finds them."""
    return isinstance(get_user_model()._meta.pk, models.AutoField)


def _db(using: str | None) -> str:
    return using or router.db_for_write(CubeUser)


def _load(text: str) -> Any:
    return get_user_model()._meta.pk.to_python(text) if text else None


def _dump(pk: Any) -> str:
    return "" if pk is None else str(pk)


def _scan(db: str, start: Any, size: int) -> tuple[Any, bool, int]:
    """Link the users without one among the (at most) ``size`` users after ``start``.

    Returns the last key looked at (``start`` when there was no user after it), whether the
    window was full (more users may follow), and how many links were created.
    """
    users = get_user_model()._default_manager.using(db).order_by()
    links = CubeUser.objects.using(db)
    if start is not None:
        users = users.filter(pk__gt=start)
        links = links.filter(user_id__gt=start)
    nth = list(users.order_by("pk").values_list("pk", flat=True)[size - 1 : size])
    full = bool(nth)
    end = nth[0] if full else users.aggregate(last=Max("pk"))["last"]
    if end is None:
        return start, False, 0
    # The range bounds both sides, so the anti-join reads the two indexes in that range alone.
    links = links.filter(user_id__lte=end)
    missing = users.filter(pk__lte=end).filter(~Exists(links.filter(user_id=OuterRef("pk"))))
    found = [CubeUser(user_id=pk, dirty_version=1) for pk in missing.values_list("pk", flat=True)]
    if found:
        # Owed and never enqueued: the sweep hands them over at once. A link that a save
        # wrote meanwhile wins (the conflict on the user is ignored).
        CubeUser.objects.using(db).bulk_create(found, ignore_conflicts=True)
    return end, full, len(found)


def _walk(db: str, start: Any) -> tuple[Any, int]:
    """Every window from ``start`` to the end of the table; the last key and links created."""
    created = 0
    while True:
        start, full, n = _scan(db, start, WINDOW)
        created += n
        if not full:
            return start, created


def _state(db: str) -> LinkScan:
    return LinkScan.objects.using(db).get_or_create(pk=1)[0]


def _save(db: str, scan: LinkScan, *, newest: Any, rolling: Any) -> None:
    values = {"newest": _dump(newest), "rolling": _dump(rolling)}
    if values != {"newest": scan.newest, "rolling": scan.rolling}:
        LinkScan.objects.using(db).filter(pk=scan.pk).update(**values)


def sweep_step(*, using: str | None = None) -> int:
    """The sweep's share: the newest users, then (once caught up with them) one rolling window;
    returns how many links were created. At most two windows, whatever the table's size."""
    db = _db(using)
    scan = _state(db)
    newest, rolling = _load(scan.newest), _load(scan.rolling)
    created = 0
    caught_up = True
    if pks_grow():
        newest, more, created = _scan(db, newest, WINDOW)
        caught_up = not more
    if caught_up:
        end, more, n = _scan(db, rolling, WINDOW)
        rolling = end if more else None  # at the end of the table: start again
        created += n
    _save(db, scan, newest=newest, rolling=rolling)
    return created


def catch_up(*, using: str | None = None) -> int:
    """Link every user saved since the search last looked (above the high-water mark; the first
    time, and where keys do not grow, every user); returns how many links were created."""
    if not pks_grow():
        return link_all(using=using)
    db = _db(using)
    scan = _state(db)
    newest, created = _walk(db, _load(scan.newest))
    _save(db, scan, newest=newest, rolling=_load(scan.rolling))
    return created


def link_all(*, using: str | None = None) -> int:
    """Link every user without a link, reading the whole user table (a window at a time)."""
    db = _db(using)
    last, created = _walk(db, None)
    if pks_grow():
        scan = _state(db)
        newest = _load(scan.newest)
        if newest is None or (last is not None and last > newest):
            _save(db, scan, newest=last, rolling=_load(scan.rolling))
    return created
