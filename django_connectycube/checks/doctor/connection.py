"""Can this site talk to its ConnectyCube application: the credentials and the clock.

The credentials check is the only one that creates an application session; the later remote
checks reuse it through the :class:`~.context.DoctorContext`.
"""

from __future__ import annotations

import contextlib

import requests

from django_connectycube.checks.configuration import missing_credentials
from django_connectycube.checks.doctor.context import DoctorContext, setting_path
from django_connectycube.checks.doctor.findings import Finding, Status, duration
from django_connectycube.client import (
    APIError,
    ConnectyCubeClient,
    ConnectyCubeError,
    RateLimited,
    ServerError,
    Session,
    TransportError,
)
from django_connectycube.client.dates import response_date
from django_connectycube.conf import DEFAULTS

#: How far a signed session's ``timestamp`` may be from the server's clock (protocol doc: 60 min).
SIGNATURE_WINDOW = 60 * 60
#: Skew at which the doctor warns: an NTP-synced host is within a second, and drift only grows.
SKEW_WARNING = 5 * 60

DASHBOARD = "the ConnectyCube dashboard → your application → Overview"
FIX_URL = f"Check {setting_path('API_URL')}; production is {DEFAULTS['API_URL']}."


def _fail(message: str, action: str, **details: object) -> Finding:
    return Finding("credentials", Status.FAIL, message, action, dict(details))


def check_credentials(ctx: DoctorContext) -> Finding:
    """Create an application session the way the site does (signed with ``AUTH_SECRET``)."""
    missing = missing_credentials()
    if missing:
        ctx.remote_problem = "the credentials are not configured"
        names = ", ".join(setting_path(name) for name in missing)
        return _fail(f"Not set: {names}.", f"Copy them from {DASHBOARD}.", missing=missing)
    client = ctx.client
    if client is None:
        ctx.remote_problem = "the client cannot be built from the settings"
        return _fail(ctx.client_error, "Fix the setting the message names.")
    where = f"application {client.application_id} at {client.api_url}"
    try:
        session = client.create_app_session()
    except TransportError as exc:
        ctx.remote_problem = f"{client.api_url} is unreachable"
        ctx.unreachable = True
        return _fail(
            f"No answer from {client.api_url}: {exc}",
            f"{FIX_URL} Check DNS and any firewall or proxy on the way.",
        )
    except RateLimited as exc:
        ctx.remote_problem = "ConnectyCube is rate limiting this application"
        return Finding(
            "credentials",
            Status.WARN,
            f"ConnectyCube answered 429 (rate limited) for {where}: {exc}",
            "Run the doctor again in a minute; if it persists, look for a process flooding "
            "the application with requests.",
        )
    except ServerError as exc:
        ctx.remote_problem = "ConnectyCube answers with server errors"
        return _fail(
            f"ConnectyCube failed (HTTP {exc.status}) for {where}: {exc}",
            "Try again later; if it persists, contact ConnectyCube support.",
        )
    except ConnectyCubeError as exc:
        ctx.remote_problem = "the credentials were refused"
        return _diagnose_refusal(ctx, client, exc)
    ctx.adopt_session(session)
    return Finding(
        "credentials",
        Status.OK,
        f"Application session created for {where}.",
        details={"api_url": client.api_url, "application_id": client.application_id},
    )


def _web_page(exc: ConnectyCubeError) -> str:
    """How the answer describes itself when it is a web page (``""`` when it is not one)."""
    response = exc.response
    if response is None:
        return ""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    if "html" in kind or response.text.lstrip()[:1] == "<":
        return kind or "HTML"
    return ""


def _diagnose_refusal(
    ctx: DoctorContext, client: ConnectyCubeClient, exc: ConnectyCubeError
) -> Finding:
    """Name the setting to fix: retry unsigned, which tells a wrong secret from a wrong key.

    Current ConnectyCube servers accept an unsigned ``POST /session`` (JS SDK 4+ sends none). If
    that works, the application id and key are right and only the signature, hence
    ``AUTH_SECRET``, is wrong. Which setting the server's other messages point at is inferred
    from their words ("auth key", "application"), not documented.
    """
    status = exc.status or (exc.response.status_code if exc.response is not None else None)
    page = _web_page(exc)
    if page:
        return _fail(
            f"{client.api_url} does not answer like the ConnectyCube API: POST /session got "
            f"a web page (HTTP {status}, {page}).",
            FIX_URL,
            status=status,
        )
    messages = "; ".join(exc.messages) or str(exc)
    if not (isinstance(exc, APIError) and exc.errors is not None and status in (401, 403, 422)):
        return _fail(
            f"{client.api_url} does not answer like the ConnectyCube API "
            f"(HTTP {status} on POST /session: {messages}).",
            FIX_URL,
            status=status,
        )
    unsigned = _unsigned_session(ctx, client)
    if isinstance(unsigned, Session):
        return _fail(
            f"{setting_path('APPLICATION_ID')} and {setting_path('AUTH_KEY')} are accepted, but "
            f"the signature made with {setting_path('AUTH_SECRET')} is not ({messages}).",
            f"Set {setting_path('AUTH_SECRET')} to the application's Authorization secret "
            f"from {DASHBOARD}.",
            setting="AUTH_SECRET",
        )
    text = " ".join([messages, *(unsigned.messages if unsigned else [])]).lower()
    if "auth key" in text or "auth_key" in text or "authkey" in text:
        setting = "AUTH_KEY"
    elif "application" in text:
        setting = "APPLICATION_ID"
    else:
        return _fail(
            f"ConnectyCube refused the credentials: {messages}",
            f"Copy {setting_path('APPLICATION_ID')}, {setting_path('AUTH_KEY')} and "
            f"{setting_path('AUTH_SECRET')} again from {DASHBOARD}; all three must come from "
            "the same application.",
        )
    return _fail(
        f"ConnectyCube refused {setting_path(setting)}: {messages}",
        f"Set {setting_path(setting)} to the value shown in {DASHBOARD}; APPLICATION_ID, "
        "AUTH_KEY and AUTH_SECRET must all come from the same application.",
        setting=setting,
    )


def _unsigned_session(ctx: DoctorContext, client: ConnectyCubeClient) -> Session | APIError | None:
    """An unsigned ``POST /session``: the session (ended at once) or the server's refusal."""
    body = {"application_id": client.application_id, "auth_key": ctx.setting("AUTH_KEY")}
    try:
        response = client.transport.request("POST", "session", json=body, safe=True)
    except APIError as exc:
        return exc
    except TransportError:
        return None
    try:
        session = Session.from_api(response.json())
    except (ValueError, KeyError, TypeError):
        return None
    if session.token:
        with contextlib.suppress(APIError, TransportError):
            client.destroy_session(session.token)
    return session


def measure_skew(ctx: DoctorContext, client: ConnectyCubeClient) -> tuple[float, float] | None:
    """Seconds the server's clock (its ``Date`` header) is ahead of ours, and the measurement's
    uncertainty; None when the server sent no usable ``Date``.

    Any answer carries ``Date``, so ``GET /session`` is used with the doctor's token when it has
    one and without (a 401 ``Token is required``) otherwise.
    """
    headers = {"CB-Token": ctx.session.token} if ctx.session else None
    before = ctx.clock()
    try:
        response: requests.Response | None = client.transport.request(
            "GET", "session", headers=headers
        )
    except APIError as exc:
        response = exc.response
    after = ctx.clock()
    server = response_date(response)
    if server is None:
        return None
    # Date has one-second resolution and is truncated: the server's instant is server + 0.5 s.
    return server.timestamp() + 0.5 - (before + after) / 2, (after - before) / 2 + 0.5


def check_clock(ctx: DoctorContext) -> Finding:
    """How far this machine's clock is from ConnectyCube's, against the signature window."""
    client = ctx.client
    if client is None or ctx.unreachable:
        reason = ctx.remote_problem or ctx.client_error or "ConnectyCube cannot be reached"
        return Finding("clock", Status.SKIP, f"Not measured: {reason}.")
    try:
        measured = measure_skew(ctx, client)
    except TransportError as exc:
        return Finding(
            "clock",
            Status.WARN,
            f"Not measured: no answer from {client.api_url} ({exc}).",
            "Run the doctor again; if it persists, check the network path to ConnectyCube.",
        )
    if measured is None:
        return Finding(
            "clock",
            Status.WARN,
            f"Not measured: {client.api_url} sent no Date header.",
            f"Check that {setting_path('API_URL')} points at ConnectyCube, not a proxy that "
            "strips headers.",
        )
    skew, uncertainty = measured
    details = {"skew_seconds": round(skew, 1), "uncertainty_seconds": round(uncertainty, 1)}
    found = f"This machine's clock is {duration(skew)} {'behind' if skew > 0 else 'ahead of'} "
    found += "ConnectyCube's"
    fix = "Synchronise this machine's clock with NTP (e.g. `timedatectl set-ntp true` or chrony)."
    if abs(skew) >= SIGNATURE_WINDOW:
        message = f"{found}: beyond the 60 min ConnectyCube allows, it refuses our signatures "
        message += "(the client then re-signs on the server's clock)."
        return Finding("clock", Status.FAIL, message, fix, details)
    if abs(skew) > SKEW_WARNING:
        message = f"{found}; signed sessions are refused beyond 60 min."
        return Finding("clock", Status.WARN, message, fix, details)
    message = f"Within {duration(max(abs(skew), 1))} of ConnectyCube's."
    return Finding("clock", Status.OK, message, details=details)
