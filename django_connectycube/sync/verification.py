"""The verification: links whose remote user is gone are found and repaired without a human.

A ConnectyCube application that restarted without its data (a reset emulator, a wiped or
recreated application) forgets our users while our links still say ``synced``; nothing we send
names them, so no push would ever notice. The verification reads the remote users at the links'
ids (:func:`.drift.fetch`, one ``GET /users/v2`` per hundred links) and judges them by the rule
``--verify`` reports with (:func:`.drift.lost`):

* **missing**: nothing at that id. The link is forgotten at once (:func:`.remote_ids.
  forget_missing`): owed a create under a new external id, which the normal push makes, looking
  that id up first.
* **not ours**: the user at that id carries another external id. A reset remote gave the id to
  someone else, or the user edited their own external id (they hold a token): only a push can
  tell, so the link is owed a full push (digest cleared) that proves the user ours and restores
  it, or creates ours again (:func:`.sync.push_user`).

Both record ``Drift: …`` as the row's ``last_error`` and stamp ``drift_found_at``; a link counts
as drifted (:func:`drifted`) until it has been pushed since.

The Celery beat task ``verify_links`` verifies one window of links per run, after a cursor kept in
:class:`~.models.DriftScan`, so a run costs ``ceil(window / 100)`` requests whatever the table's
size and a pass over ``N`` links takes ``ceil(N / window)`` runs. ``connectycube_sync --repair``
and ``--all`` verify every link at once (:func:`verify_all`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from itertools import islice
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from django_connectycube.client import ConnectyCubeClient, ConnectyCubeError
from django_connectycube.conf import app_settings
from django_connectycube.models import CubeUser, DriftScan
from django_connectycube.sync import drift, owed, remote_ids
from django_connectycube.sync.connection import shared_client

logger = logging.getLogger("django_connectycube")

__all__ = [
    "FOREIGN",
    "MISSING",
    "WINDOW",
    "drifted",
    "last_run",
    "verify_all",
    "verify_window",
]

#: Links per beat run by default: 20 look-ups; a pass over a million links takes 500 runs.
WINDOW = 2000
MISSING, FOREIGN = "missing", "not ours"


def _verifiable() -> Any:
    """Live links holding a remote id, not being pushed right now (a push under way decides
    for itself; the next pass looks at them again)."""
    now = timezone.now()
    return (
        CubeUser.objects.filter(user__isnull=False, cube_id__isnull=False)
        .exclude(state__in=(CubeUser.State.DELETING, CubeUser.State.DELETED))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .only("pk", "user_id", "cube_id", "external_id")
        .order_by("pk")
    )


def drifted() -> Any:
    """Links the verification found drifted and no push has repaired since."""
    return CubeUser.objects.filter(user__isnull=False, drift_found_at__isnull=False).filter(
        Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=F("drift_found_at"))
    )


def last_run() -> DriftScan | None:
    """Where the background verification stands (``None``: it never ran)."""
    return DriftScan.objects.filter(pk=1).first()


def _repair(link: CubeUser, why: str, now: datetime) -> str:
    cube_id = int(link.cube_id or 0)
    if why == drift.MISSING:
        note = (
            f"Drift: {drift.MISSING} (user {cube_id}), found by the verification; it is "
            "created again on the next push."
        )
        done = remote_ids.forget_missing(link, cube_id, note, now, drift_found_at=now)
        kind = MISSING
    else:
        note = f"Drift: {why}; the next push proves the user ours or creates it again."
        claims = CubeUser.objects.filter(pk=link.pk, cube_id=cube_id, external_id=link.external_id)
        done = owed.mark_repush(claims, now, last_error=note, drift_found_at=now)
        kind = FOREIGN
    if done:
        logger.warning("Local user %s: %s", link.external_id, note)
    return kind if done else ""


def _verify(links: Iterable[CubeUser], client: ConnectyCubeClient, counts: Counter[str]) -> None:
    """Verify these links, one look-up per batch; ``counts`` says how far it got (``last``)."""
    iterator = iter(links)
    while batch := list(islice(iterator, drift.BATCH)):
        remote = drift.fetch(client, batch)
        now = timezone.now()
        for link in batch:
            why = drift.lost(link, remote.get(int(link.cube_id or 0)))
            if why is not None and (kind := _repair(link, why, now)):
                counts[kind] += 1
        counts["checked"] += len(batch)
        counts["last"] = batch[-1].pk


def verify_window(
    window: int = WINDOW, *, client: ConnectyCubeClient | None = None
) -> Counter[str]:
    """Verify the next ``window`` links after the stored cursor, then move it (back to the
    start after the last link). A failed look-up ends the run where it stands; the links not
    verified are looked at again next time. Counts: ``checked``, ``missing``, ``not ours``."""
    counts: Counter[str] = Counter()
    if not app_settings.SYNC_ENABLED:
        return counts
    scan = DriftScan.objects.get_or_create(pk=1)[0]
    links = list(_verifiable().filter(pk__gt=scan.after)[: max(int(window), 1)])
    try:
        _verify(links, client or shared_client(), counts)
    except ConnectyCubeError as exc:
        logger.warning("The verification stopped (tried again at its next run): %s", exc)
    now = timezone.now()
    values: dict[str, Any] = {"after": counts["last"] or scan.after}
    if counts["checked"] == len(links):
        values["last_run_at"] = now
        if len(links) < window:  # the end of the table: the next run starts again
            values.update(after=0, last_pass_at=now)
    DriftScan.objects.filter(pk=1).update(**values)
    del counts["last"]
    return counts


def verify_all(*, client: ConnectyCubeClient | None = None) -> Counter[str]:
    """Verify every live link now (``connectycube_sync --repair`` and ``--all``); errors
    propagate. Counts as :func:`verify_window`'s."""
    counts: Counter[str] = Counter()
    _verify(_verifiable().iterator(chunk_size=500), client or shared_client(), counts)
    del counts["last"]
    DriftScan.objects.get_or_create(pk=1)
    DriftScan.objects.filter(pk=1).update(last_run_at=timezone.now())
    return counts
