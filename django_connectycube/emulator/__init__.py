"""A local ConnectyCube: the REST wire protocol of sessions, users and blobs, plus a control API.

Tests, the demo and benchmarks talk to it instead of ``api.connectycube.com``, over real HTTP, so
the client code under test is exactly the production code. It imports nothing of the app and
nothing of Django, so it also runs on its own (serving needs the ``[emulator]`` extra, cheroot:
``pip install "django-connectycube[emulator]"``)::

    python -m django_connectycube.emulator --port 8765 --app-id 1 --auth-key KEY --auth-secret S

or in-process::

    with EmulatorServer(auth_key="k", auth_secret="s") as server:
        requests.post(f"{server.url}/session", json={...})
        server.emulator.advance_clock(7200)

Wire behaviour follows ConnectyCube's docs, real-server logs and the official SDKs; each behaviour
and its source (or "inferred") is listed in ``docs/fidelity.md``. The emulator starts as a new
ConnectyCube application is configured: the deprecated v1 user look-ups are off (see
:mod:`django_connectycube.emulator.switches` for every dashboard switch). With ``state_file``
it keeps its users, sessions and blobs across restarts
(:mod:`django_connectycube.emulator.persistence`).

Control API (not part of ConnectyCube; never counted, never faulted)
-------------------------------------------------------------------
All bodies are JSON; errors are ``{"errors": ...}`` with 4xx statuses. Every call but a GET
needs the header ``X-Emulator-Control: 1``. Control routes answer 403 to a foreign ``Host``, to
an ``Origin`` that is not a page on this machine (only those get CORS headers), or without the
``X-Emulator-Control-Token`` header when ``control_token`` is set (health excepted): see
:mod:`django_connectycube.emulator.control_access`. ``cidp_url`` must be a loopback URL unless
the emulator was started with ``allow_remote_cidp`` (``--allow-remote-cidp``).

``GET  /_emulator/health``   → ``{"ok": true, "now": iso}``
``POST /_emulator/reset``    → ``{"ok": true}``; forgets users, sessions, blobs, outbox, nonces,
                                faults, counters, the clock offset and run-time configuration
                                (and empties the state file, if any).
``GET  /_emulator/state``    → ``{"users": [...], "sessions": [...], "blobs": [...],
                                "outbox": [...], "now": iso}``. Users are wire objects plus
                                ``has_password``, ``email_confirmed`` and ``source`` (signup/
                                auto/guest/cidp/firebase_phone/firebase_email/seed); sessions add
                                ``expires_at``;
                                blobs add ``owner_id``, ``uploaded``, ``uploaded_size``; outbox
                                items are ``{"to", "user_id", "subject", "body", "sent_at"}``.
``GET  /_emulator/clock``    → ``{"now": iso, "offset": seconds}``
``POST /_emulator/clock``    ``{"advance": seconds}`` → same shape as GET.
``GET  /_emulator/config``   → ``{"config": {"application_id", "auth_key", "auth_secret",
                                "require_signature", "cidp_url", "cidp_response_mapping",
                                "cidp_failure_style", "deny_auto_create", "firebase_key",
                                "v1_users_api", "allow_users_list", "allow_other_user_info",
                                "require_email_confirmation", "online_users_api",
                                "admin_api_key"}}``
``POST /_emulator/config``   any subset of those keys → the new ``{"config": ...}``.
``GET  /_emulator/faults``   → ``{"faults": [rule, ...]}``
``POST /_emulator/faults``   a rule → 201 ``{"fault": rule}``. Keys (all optional):
                                ``route`` (pattern, default ``"*"``), ``error_rate`` (0-1),
                                ``statuses`` (default ``[500, 503]``), ``rate_limit_rate`` (0-1,
                                answers 429 with ``Retry-After``), ``retry_after`` (seconds,
                                default 1), ``latency`` (seconds added to every matching
                                request), ``drop_rate`` (0-1, the socket is closed with no
                                response), ``timeout_rate`` (0-1, the request is held
                                ``timeout_seconds``, default 30, then dropped), ``count`` (the
                                rule applies to the next N matching requests, then is removed),
                                ``sequence`` (a list such as ``[503, 429, "drop", "timeout",
                                200]``: the next matching requests get these outcomes in order,
                                ``200``/``"ok"`` meaning "serve normally"; then the rule is
                                removed), ``seed`` (integer, makes the random rates
                                repeatable). The latencies of all matching rules add
                                up; the first matching rule that can fail the request
                                (a rate or a sequence) decides its outcome.
``DELETE /_emulator/faults`` → ``{"faults": []}``; ``DELETE /_emulator/faults/{id}`` removes one.
``GET  /_emulator/requests`` → ``{"total": n, "routes": {"POST /users": n,
                                "GET /users/{id}": n, ...}}`` keyed by route templates
                                (unknown paths by their concrete ``METHOD /path``).
``DELETE /_emulator/requests`` resets the counters → ``{"total": 0, "routes": {}}``.

Route patterns (faults and :meth:`Emulator.request_count`) match the route template
(``GET /users/{id}``) or the concrete request (``GET /users/42``) by equality, glob
(``GET /users/*``) or full regex (``(GET|PUT) /users/\\d+``); a pattern starting with ``/``
ignores the method; ``*`` matches everything.

The same operations exist in Python on :class:`Emulator`: ``reset()``, ``state()``, ``users``,
``sessions``, ``blobs``, ``outbox``, ``now()``, ``advance_clock(seconds)``,
``set_fault(route_pattern, **keys)``, ``clear_faults()``, ``request_count(route_pattern=None)``,
``request_counts()``, ``reset_counters()``, ``configure(**config)``, seeding helpers
``create_user(**fields)`` / ``create_session(user_id=None)``, ``confirm_email(user_id)`` (what
the link of a confirmation email does) and ``close()`` (saves and closes the state file).

Upload protocol: ``POST /blobs`` answers ``blob_object_access.params`` as
``{emulator}/_storage?Content-Type=…&key=<uid>&policy=…&x-amz-signature=…``; the client posts
``multipart/form-data`` with each query pair as a field and then ``file``; the emulator answers
201 with an S3-style ``<PostResponse>`` XML body. The form's ``Expires`` is an HTTP date.

The Admin API's ``DELETE /admin/user/{id}`` answers when ``admin_api_key`` is set and the request
carries it as ``CB-Administration-API-Key``; a confirmation email's link is served at
``GET /user_email/confirm_email?token=...``.

Firebase logins: see :mod:`django_connectycube.emulator.identity` and
:func:`mint_firebase_token`.
"""

from __future__ import annotations

from .app import Emulator
from .faults import FaultRule
from .identity import FirebaseIdentity, mint_firebase_token
from .server import EmulatorServer, ServerNotInstalled
from .wire import ApiError

__all__ = [
    "ApiError",
    "Emulator",
    "EmulatorServer",
    "FaultRule",
    "FirebaseIdentity",
    "ServerNotInstalled",
    "mint_firebase_token",
]
