"""How a failed push is named: the engine's own errors, and the ``last_error`` of a failure.

Every error the engine raises itself is a :class:`SyncError`, so a caller (the failure policy,
the API, a task) tells the engine's own refusals from the client's and from bugs with one
``isinstance``. They live below every module that raises or classifies them (the failure policy
tells a :class:`SessionUnavailable` from an unknown error without importing the session manager).

The sync engine, the session manager and the API all meet conflicts (a remote account that is
not provably ours, a remote id already linked to another row); they raise :class:`SyncConflict`
from here and record it through the failure policy (:func:`.policy.record`), so a conflict
always ends the same way: state ``failed``, ``last_error`` saying what to do, and the
``user_sync_failed`` signal.
"""

from __future__ import annotations

from django_connectycube.client import AuthenticationError, SessionExpired, ValidationError

__all__ = [
    "Busy",
    "CircuitOpen",
    "LeaseLost",
    "Refused",
    "SessionUnavailable",
    "SyncConflict",
    "SyncError",
    "describe",
]


class SyncError(Exception):
    """An error of the engine itself (not the client's, not a bug)."""


class Busy(SyncError):
    """Owed work elsewhere blocks this push (another worker holds the user's lease, or a pending
    delete/rename of another local user still holds its login); try again in a moment."""


class SyncConflict(SyncError):
    """ConnectyCube holds data that belongs to someone else; an operator has to decide."""


class SessionUnavailable(SyncError):
    """No session could be had in time; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LeaseLost(SyncError):
    """The lease ran out and another worker took the user; this push stops here."""


class CircuitOpen(SyncError):
    """ConnectyCube failed repeatedly; no request was made. ``retry_in``: seconds until the next
    probe may go out."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(
            f"ConnectyCube is failing repeatedly, so pushes are paused (circuit open); "
            f"the next probe goes out in {retry_in:.0f} s."
        )
        self.retry_in = retry_in


class Refused(SyncError):
    """The CIdP verifier refuses a token; the message is what ConnectyCube is told (422)."""


def describe(error: BaseException) -> str:
    """The ``last_error`` of a failure: what happened and what an operator can do about it."""
    if isinstance(error, ValidationError) and error.field_errors:
        details = "; ".join(f"{k}: {', '.join(v)}" for k, v in error.field_errors.items())
        return (
            f"ConnectyCube rejected the user's data ({details}). Fix the local user (or the "
            "USER_FIELDS mapping), then save it or re-sync it from the admin."
        )
    if isinstance(error, AuthenticationError) and not isinstance(error, SessionExpired):
        return (
            f"ConnectyCube refused the derived password ({error}). The remote user was not "
            "created by this site, or PASSWORD_SECRETS lost the version it was created with."
        )
    return f"{type(error).__name__}: {error}"
