"""The signals this app sends, for integrators to connect to.

They live apart from the receivers (:mod:`.receivers`) so the sync engine can send them without
importing anything that enqueues work.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["user_deleted_remote", "user_sync_failed", "user_synced"]

#: Sent after a push reached ConnectyCube. Arguments: ``link`` (CubeUser), ``created`` (bool).
user_synced = Signal()
#: Sent when a push gave up (the row is now ``failed``). Arguments: ``link``, ``error``.
user_sync_failed = Signal()
#: Sent after the remote user was deleted (or found already gone). Arguments: ``link``.
user_deleted_remote = Signal()
