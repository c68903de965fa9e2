"""Do the password secrets still open the accounts already on ConnectyCube?

ConnectyCube passwords are derived, never stored, so a secret replaced under the same version
(development settings giving way to production ones with a fresh secret) silently locks every
existing user out: the rows still say ``synced`` and the system checks are green, but each login
answers 502. Only ConnectyCube can tell, so the check logs one user in, the one that depends on
the oldest secret, exactly as a login would, and ends that session again.
"""

from __future__ import annotations

import contextlib

from django.db import DatabaseError

from django_connectycube.checks.doctor.application import _skip_reason
from django_connectycube.checks.doctor.context import DoctorContext, setting_path
from django_connectycube.checks.doctor.findings import Finding, Status
from django_connectycube.client import (
    AuthenticationError,
    ConnectyCubeError,
    NotFound,
    SessionExpired,
)
from django_connectycube.conf import ConfigurationError
from django_connectycube.models import CubeUser
from django_connectycube.sync import logins, mapping

__all__ = ["check_password_secret"]

NAME = "password_secret"
SECRETS = setting_path("PASSWORD_SECRETS")


def _oldest_synced_link() -> CubeUser | None:
    """The synced link on the oldest secret: the one a replaced secret locks out first."""
    return (
        CubeUser.objects.filter(state=CubeUser.State.SYNCED, cube_id__isnull=False)
        .order_by("password_version", "pk")
        .first()
    )


def _skip(message: str) -> Finding:
    return Finding(NAME, Status.SKIP, message)


def check_password_secret(ctx: DoctorContext) -> Finding:
    """One trial login of one synced user with the password the settings derive for it."""
    reason = _skip_reason(ctx, needs_session=True)
    if reason:
        return _skip(f"Not checked: {reason}.")
    if logins.auth_mode() == logins.AUTH_MODE_CIDP:
        return _skip("Not checked: in CIdP mode ConnectyCube passwords are not derived.")
    try:
        link = _oldest_synced_link()
    except DatabaseError as exc:
        return _skip(f"Not checked: cannot read the ConnectyCube user links ({exc}).")
    if link is None:
        return _skip("Not checked: no user is synced to ConnectyCube yet.")
    assert ctx.client is not None
    assert link.cube_id is not None
    try:
        candidates = mapping.password_candidates(link.external_id, link.password_version or None)
        # The trial logs in under the login the remote user has now (read by id), so it can
        # never create a user; nothing learned here is recorded (remote_ids.learn is the push's).
        current = ctx.client.get_user(link.cube_id).login
        login = current if current else link.login
    except ConfigurationError as exc:
        return Finding(NAME, Status.FAIL, str(exc), f"Fix {SECRETS}.")
    except NotFound:
        return _skip(
            f"Not checked: ConnectyCube user {link.cube_id} (local user {link.user_id}) is gone; "
            "the Drift check reports such links."
        )
    except ConnectyCubeError as exc:
        return Finding(
            NAME,
            Status.WARN,
            f"Could not read ConnectyCube user {link.cube_id}: {exc}",
            "Run the doctor again; if it persists, see the Credentials check.",
        )
    details = {"local_user": link.user_id, "recorded_version": link.password_version}
    refused: AuthenticationError | None = None
    for version, password in candidates:
        try:
            session = ctx.client.create_user_session(login=login, password=password)
        except SessionExpired as exc:
            return Finding(
                NAME, Status.WARN, f"The trial login failed: {exc}", "Run the doctor again."
            )
        except AuthenticationError as exc:
            refused = exc
            continue
        except ConnectyCubeError as exc:
            return Finding(
                NAME,
                Status.WARN,
                f"The trial login of {login!r} failed: {exc}",
                "Run the doctor again; if it persists, see the Credentials check.",
            )
        with contextlib.suppress(ConnectyCubeError):
            ctx.client.destroy_session(session.token)
        return Finding(
            NAME,
            Status.OK,
            f"ConnectyCube accepts the password derived for {login!r} under version {version}.",
            details={**details, "version": version},
        )
    recorded = link.password_version or mapping.current_password_version()
    return Finding(
        NAME,
        Status.FAIL,
        f"ConnectyCube refused the password derived for {login!r} (local user {link.user_id}, "
        f"password version {recorded}, tried every version configured): {refused}. Every "
        "login of the users created under the old secret answers 502 while their rows say "
        "synced.",
        f"Put the secret these users were created with back into {SECRETS} under version "
        f"{recorded} (under the development settings that is SECRET_KEY) and your new secret "
        f"under the next number, e.g. {{{recorded}: <old>, {recorded + 1}: <new>}}; then run "
        "`manage.py connectycube_rederive_passwords` to move everyone to the new one. If the "
        "old secret is lost, these remote users cannot be logged into: delete them on "
        "ConnectyCube (or set ADMIN_API_KEY) and re-sync.",
        details,
    )
