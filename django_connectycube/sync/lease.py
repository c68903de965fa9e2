"""Leases: one worker owns a user's link while it pushes it, and keeps owning it while it waits.

A lease is a time on the row (``lease_until``), so a worker that dies simply lets it run out.
It must never run out under a worker that is still pushing, or a second worker would push the
same user at the same time: a push is several HTTP calls, and one call can take the connect
and read timeouts several times over plus the waits between its retries. So the lease is
renewed before every HTTP attempt (the client's ``before_attempt`` hook), once a third of
``LEASE_SECONDS`` has passed since the last renewal; fast pushes never pay for it. The system
check ``connectycube.W006`` makes sure one attempt plus one wait fits in the rest of the lease.

If the renewal finds the lease gone (it expired and another worker took it), the push stops
before its next request with :class:`LeaseLost`, which the failure policy treats as busy.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, close_old_connections, connections
from django.db.models import Q
from django.utils import timezone

from django_connectycube.client import ConnectyCubeClient
from django_connectycube.conf import app_settings
from django_connectycube.errors import LeaseLost
from django_connectycube.models import CubeUser

__all__ = [
    "Lease",
    "current",
    "held",
    "reconnect",
    "token",
    "watch",
]

#: Renew once this share of the lease has passed since the last renewal.
RENEW_FRACTION = 1 / 3

_local = threading.local()


def token(now: datetime, seconds: float) -> datetime:
    """A lease end no other claim uses, so its holder can find exactly the rows it got.

    The random microseconds (added, never taken away) make two claims in the same instant
    differ.
    """
    jitter = timedelta(microseconds=random.randrange(1, 1000))  # noqa: S311
    return now + timedelta(seconds=seconds) + jitter


class Lease:
    """The lease on the links ``rows`` selects that carry ``lease_until == token``."""

    def __init__(self, rows: Q, until: datetime, seconds: float) -> None:
        self.rows = rows
        self.token = until
        self.seconds = seconds
        self._renewed = time.monotonic()
        self._lock = threading.Lock()
        #: Set once the statement recording the push ended the lease (``record_pushed``'s
        #: ``lease``): :meth:`release` has nothing left to give back.
        self.ended = False

    def renew_if_due(self) -> None:
        """Extend the lease when a third of it has passed; :class:`LeaseLost` if it is gone."""
        if time.monotonic() - self._renewed < self.seconds * RENEW_FRACTION:
            return
        with self._lock:
            if time.monotonic() - self._renewed < self.seconds * RENEW_FRACTION:
                return  # another thread of the same batch renewed it meanwhile
            new = token(timezone.now(), self.seconds)
            renewed = CubeUser.objects.filter(self.rows, lease_until=self.token).update(
                lease_until=new
            )
            if not renewed:
                raise LeaseLost(
                    "The lease on this user ran out and another worker took it; "
                    "this push stopped before its next request."
                )
            self.token = new
            self._renewed = time.monotonic()

    def release(self) -> int:
        """Give the rows still leased back (a row already recorded was released then), on a
        fresh connection if the push broke its own: a lease left behind would make the retry
        busy for the rest of it."""
        if self.ended:
            return 0
        rows = CubeUser.objects.filter(self.rows, lease_until=self.token)
        try:
            return rows.update(lease_until=None)
        except DatabaseError:
            reconnect()
            return rows.update(lease_until=None)


def reconnect() -> None:
    """Drop the database connections an error left unusable (a killed backend, a restarted
    server), so what follows (the lease's release, the failure's record, the task's retry)
    opens a fresh one. Never inside a transaction, which closing would end."""
    if not any(c.in_atomic_block for c in connections.all(initialized_only=True)):
        close_old_connections()


def take(link: Q) -> Lease | None:
    """Claim the one link ``link`` selects (by its pk or its user's) for ``LEASE_SECONDS``;
    ``None`` if another worker holds it, or there is no such link."""
    now = timezone.now()
    seconds = float(app_settings.LEASE_SECONDS)
    until = token(now, seconds)
    claimed = (
        CubeUser.objects.filter(link)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=until)
    )
    return Lease(link, until, seconds) if claimed else None


@contextmanager
def held(lease: Lease) -> Iterator[Lease]:
    """Make ``lease`` the one this thread renews before each HTTP attempt."""
    previous = getattr(_local, "lease", None)
    _local.lease = lease
    try:
        yield lease
    finally:
        _local.lease = previous


def current() -> Lease | None:
    """The lease this thread is pushing under, if any."""
    return getattr(_local, "lease", None)


def _before_attempt() -> None:
    lease = getattr(_local, "lease", None)
    if lease is not None:
        lease.renew_if_due()


def watch(client: ConnectyCubeClient) -> ConnectyCubeClient:
    """Install the renewal on a client; harmless to repeat."""
    hooks: list[Any] = client.transport.before_attempt
    if _before_attempt not in hooks:
        hooks.append(_before_attempt)
    return client
