"""What the ConnectyCube application allows: the v1 user look-ups, and the admin API key.

Both are read from how the server answers a harmless request, since ConnectyCube has no API
that reports an application's dashboard switches.
"""

from __future__ import annotations

from django_connectycube.checks.doctor.context import DoctorContext, setting_path
from django_connectycube.checks.doctor.findings import Finding, Status
from django_connectycube.client import (
    APIError,
    AuthenticationError,
    BadRequest,
    NotFound,
    PermissionDenied,
    TransportError,
    V1ApiDisabled,
    ValidationError,
)
from django_connectycube.client.errors import V1_SWITCH

__all__ = ["NO_SUCH_USER_ID", "check_admin_api_key", "check_v1_users_api"]

#: ConnectyCube user ids start at 1, so a request about user 0 can neither read nor delete
#: anyone: the probes below learn from the kind of refusal alone.
NO_SUCH_USER_ID = 0


def _skip_reason(ctx: DoctorContext, *, needs_session: bool) -> str:
    if ctx.client is None or ctx.unreachable:
        return ctx.remote_problem or ctx.client_error or "ConnectyCube cannot be reached"
    if needs_session and ctx.session is None:
        return f"no application session ({ctx.remote_problem or 'see Credentials'})"
    return ""


def check_v1_users_api(ctx: DoctorContext) -> Finding:
    """Whether the deprecated v1 user look-ups are switched on; informational either way, since
    this app reads users only through ``GET /users/v2``."""
    title = "v1 users API"
    reason = _skip_reason(ctx, needs_session=True)
    if reason:
        return Finding("v1_users_api", title, Status.SKIP, f"Not checked: {reason}.")
    assert ctx.client is not None
    try:
        ctx.client.v1_get_user(NO_SUCH_USER_ID)
    except V1ApiDisabled:
        return Finding(
            "v1_users_api",
            title,
            Status.INFO,
            "Off (a new application's default). Fine: this app reads users only through "
            "GET /users/v2.",
            details={"enabled": False},
        )
    except PermissionDenied as exc:
        return Finding(
            "v1_users_api",
            title,
            Status.INFO,
            f"Unknown: a v1 look-up was refused for another reason ({exc}). This app does not "
            "use v1 look-ups.",
            details={"enabled": None},
        )
    except (NotFound, BadRequest, ValidationError):
        return _v1_on(title)  # the look-up ran and found nobody: v1 is on
    except (TransportError, APIError) as exc:
        return Finding(
            "v1_users_api",
            title,
            Status.WARN,
            f"Unknown: the v1 look-up failed ({exc}).",
            "Run the doctor again; if it persists, check ConnectyCube's status.",
            details={"enabled": None},
        )
    return _v1_on(title)


def _v1_on(title: str) -> Finding:
    return Finding(
        "v1_users_api",
        title,
        Status.INFO,
        f"On (the dashboard switch '{V1_SWITCH}' is unchecked). This app does not use v1 "
        "look-ups, so you may check it.",
        details={"enabled": True},
    )


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
