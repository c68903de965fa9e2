"""What the ConnectyCube application allows: the user look-ups, and the admin API key.

Both are read from how the server answers a harmless request, since ConnectyCube has no API
that reports an application's dashboard switches.
"""

from __future__ import annotations

from django_connectycube.checks.doctor.context import DoctorContext, setting_path
from django_connectycube.checks.doctor.findings import Finding, Status
from django_connectycube.client import (
    APIError,
    AuthenticationError,
    NotFound,
    PermissionDenied,
    TransportError,
)
from django_connectycube.client.errors import USERS_SWITCHES

__all__ = ["NO_SUCH_USER_ID", "check_admin_api_key", "check_users_api"]

#: ConnectyCube user ids start at 1, so a request about user 0 can neither read nor delete
#: anyone: the probes below learn from the kind of refusal alone.
NO_SUCH_USER_ID = 0


def _skip_reason(ctx: DoctorContext, *, needs_session: bool) -> str:
    if ctx.client is None or ctx.unreachable:
        return ctx.remote_problem or ctx.client_error or "ConnectyCube cannot be reached"
    if needs_session and ctx.session is None:
        return f"no application session ({ctx.remote_problem or 'see Credentials'})"
    return ""


def check_users_api(ctx: DoctorContext) -> Finding:
    """Whether ConnectyCube lets this app read users through ``GET /users/v2``, the only user
    look-up the sync engine makes (it finds a user an earlier attempt created by it)."""
    title = "Users API"
    reason = _skip_reason(ctx, needs_session=True)
    if reason:
        return Finding("users_api", title, Status.SKIP, f"Not checked: {reason}.")
    assert ctx.client is not None
    try:
        ctx.client.find_user(id=NO_SUCH_USER_ID)
    except PermissionDenied as exc:
        return Finding(
            "users_api",
            title,
            Status.FAIL,
            f"Refused: {exc}",
            f"Check {USERS_SWITCHES} in the ConnectyCube dashboard: the sync engine looks "
            "users up by their external id.",
        )
    except (TransportError, APIError) as exc:
        return Finding(
            "users_api",
            title,
            Status.WARN,
            f"Unknown: the look-up failed ({exc}).",
            "Run the doctor again; if it persists, check ConnectyCube's status.",
        )
    return Finding("users_api", title, Status.OK, "GET /users/v2 answers.")


def check_admin_api_key(ctx: DoctorContext) -> Finding:
    """Whether ConnectyCube accepts ``ADMIN_API_KEY``, learnt without deleting anything.

    The probe deletes user 0, which cannot exist. ConnectyCube documents neither the answer to a
    refused key nor whether it checks the key before looking for the user; the verdict is
    inferred: "not found" means the key passed, 401/403 means it was refused. A server that
    looked for the user first would make a refused key look accepted.
    """
    title = "Admin API key"
    if not ctx.setting("ADMIN_API_KEY"):
        return Finding(
            "admin_api_key",
            title,
            Status.SKIP,
            f"{setting_path('ADMIN_API_KEY')} is not set (optional): remote deletes use the "
            "user's own session, so CIdP users and users whose password no longer works cannot "
            "be deleted on ConnectyCube.",
        )
    reason = _skip_reason(ctx, needs_session=False)
    if reason:
        return Finding("admin_api_key", title, Status.SKIP, f"Not checked: {reason}.")
    assert ctx.client is not None
    fix = (
        f"Set {setting_path('ADMIN_API_KEY')} to the key shown in the ConnectyCube dashboard → "
        "Overview → Administration API Credentials (Advanced plan and up), or remove it."
    )
    try:
        ctx.client.admin_delete_user(NO_SUCH_USER_ID)
    except NotFound:
        pass
    except (AuthenticationError, PermissionDenied) as exc:
        return Finding("admin_api_key", title, Status.FAIL, f"Refused by ConnectyCube: {exc}", fix)
    except (TransportError, APIError) as exc:
        return Finding(
            "admin_api_key",
            title,
            Status.WARN,
            f"Unknown: the probe (deleting user {NO_SUCH_USER_ID}, who cannot exist) failed: {exc}",
            f"Run the doctor again; if it persists, check the key. {fix}",
        )
    return Finding(
        "admin_api_key",
        title,
        Status.OK,
        f"Accepted (inferred: deleting user {NO_SUCH_USER_ID}, who cannot exist, answered "
        "'not found' rather than refusing the key).",
    )
