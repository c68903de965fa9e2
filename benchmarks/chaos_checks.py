"""The invariants a chaos run ends with (the emulator's state against the database), and its
report.

One :class:`Check` per invariant; :func:`check_invariants` also returns the figures that
:func:`print_report` prints.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from benchmarks.chaos_workload import ROLLBACK_MARK
from django_connectycube.emulator import EmulatorServer

if TYPE_CHECKING:
    import argparse

    from benchmarks.chaos import Chaos, Workload
    from benchmarks.chaos_faults import FaultTally
    from benchmarks.chaos_services import OwnRedis, Supervisor, Sweeper

__all__ = ["Check", "check_invariants", "print_report"]

TOKEN_RE = re.compile(r"[0-9a-f]{40}")
WORD_RE = re.compile(r"[A-Za-z0-9_\-]{16,}")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def _remote_state(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_emulator/state", timeout=30).json()


def check_invariants(
    workload: Workload, server: EmulatorServer, tally: FaultTally, logs: list[Path], chaos: Chaos
) -> tuple[list[Check], dict[str, int]]:
    """Compare the emulator's state with the database; every invariant is one check.

    The users the workload made invalid on purpose (more tags than ConnectyCube takes) are the
    only rows allowed to end ``failed``, and must: every other live user ends synced.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection

    from django_connectycube.conf import app_settings
    from django_connectycube.models import CubeSession, CubeUser, identity
    from django_connectycube.sync import mapping

    User = get_user_model()
    state = _remote_state(server.url)
    remote_users = state["users"]
    by_external: dict[str, list[dict[str, Any]]] = {}
    for remote in remote_users:
        by_external.setdefault(str(remote.get("external_id")), []).append(remote)

    everyone = list(User.objects.all().order_by("pk"))
    live = [user for user in everyone if user.pk not in workload.invalid]
    links = {link.external_id: link for link in CubeUser.objects.all()}
    link_of = {link.user_id: link for link in links.values() if link.user_id is not None}
    live_ids = {link_of[u.pk].external_id for u in everyone if u.pk in link_of}
    invalid_ids = {link_of[pk].external_id for pk in workload.invalid if pk in link_of}
    tombstone_ids = {ext for ext, link in links.items() if link.user_id is None}
    lost, duplicated, stale_profile, stale_avatar, stale_links = [], [], [], [], []
    for user in live:
        link = link_of.get(user.pk)
        found = by_external.get(link.external_id, []) if link is not None else []
        if not found:
            lost.append(user.pk)
            continue
        if len(found) > 1:
            duplicated.append(user.pk)
        remote = found[0]
        expected, _ = identity.sent_fields(
            mapping.get_user_fields(user, link.external_id), link.withheld, link.login
        )
        for key, value in expected.items():
            remote_key = "user_tags" if key == "tag_list" else key
            if (remote.get(remote_key) or "") != (value or ""):
                stale_profile.append((user.pk, key, value, remote.get(remote_key)))
                break
        if link.cube_id != remote["id"] or link.state != CubeUser.State.SYNCED:
            stale_links.append((user.pk, link and link.state, link and link.cube_id, remote["id"]))
        custom = json.loads(remote.get("custom_data") or "{}") if remote.get("custom_data") else {}
        if user.avatar:
            with user.avatar.open("rb") as fileobj:
                local_digest = hashlib.sha256(fileobj.read()).hexdigest()
            data = server.emulator.get_blob_data(remote.get("avatar") or "")
            remote_digest = hashlib.sha256(data).hexdigest() if data is not None else None
            if remote_digest != local_digest or custom.get("avatar_uid") != remote.get("avatar"):
                stale_avatar.append(user.pk)
        elif remote.get("avatar") or custom.get("avatar_uid"):
            stale_avatar.append(user.pk)

    # A deleted user's external id carried by a remote user means its delete never happened.
    resurrected = sorted(ext for ext in by_external if ext in tombstone_ids)
    orphans = [
        r["id"] for r in remote_users if str(r.get("external_id")) not in live_ids | tombstone_ids
    ]
    shared_ids = [ext for ext, found in by_external.items() if ext != "None" and len(found) > 1]
    rolled_back = [
        r["id"]
        for r in remote_users
        if (r.get("login") or "") in workload.rollback_logins
        or ROLLBACK_MARK in (r.get("full_name") or "")
    ]
    tombstones = CubeUser.objects.filter(user__isnull=True)
    open_tombstones = list(
        tombstones.exclude(state=CubeUser.State.DELETED).values_list("external_id", "state")
    )
    failed = dict(
        CubeUser.objects.filter(state=CubeUser.State.FAILED).values_list(
            "external_id", "last_error"
        )
    )
    dead_letters = sorted((ext, error) for ext, error in failed.items() if ext not in invalid_ids)
    invalid_off = sorted(
        ext
        for ext in invalid_ids
        if ext in by_external or "rejected the user's data" not in failed.get(ext, "")
    )

    # Secrets: every token the emulator ever issued, the app credentials, the derived passwords.
    fixed_secrets = {
        "auth key": app_settings.AUTH_KEY,
        "auth secret": app_settings.AUTH_SECRET,
        "password secret": next(iter(app_settings.PASSWORD_SECRETS.values())),
    }
    passwords = {
        mapping.derive_password(ext, link.password_version or None) for ext, link in links.items()
    }
    text = "\n".join(path.read_text(errors="replace") for path in logs if path.exists())
    enqueue_failures = logs[0].read_text(errors="replace").count("Could not enqueue")  # driver
    words = set(TOKEN_RE.findall(text)) | set(WORD_RE.findall(text))
    leaked_tokens = words & tally.tokens
    leaked_passwords = {p for p in passwords if p in text} if passwords else set()
    leaked_fixed = [name for name, value in fixed_secrets.items() if value and value in text]

    table = connection.ops.quote_name(CubeSession._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT token FROM {table}")  # noqa: S608
        raw_tokens = [row[0] or "" for row in cursor.fetchall()]
    stored_tokens = {row.token for row in CubeSession.objects.all() if row.token}
    plaintext = [
        raw for raw in raw_tokens if set(TOKEN_RE.findall(raw)) & (tally.tokens | stored_tokens)
    ]

    figures = {
        "lost": len(lost),
        "duplicated": len(duplicated) + len(shared_ids),
        "stale": len(stale_profile) + len(stale_avatar),
        "orphans": len(orphans),
        "dead letters": len(dead_letters),
        "sessions stored": len(stored_tokens),
        "log bytes": len(text),
    }
    sample = lambda items: f" e.g. {items[:3]}" if items else ""  # noqa: E731
    checks = [
        Check(
            "every live user exists remotely (0 lost)", not lost, f"{len(lost)} lost{sample(lost)}"
        ),
        Check(
            "every live user exists remotely exactly once (0 duplicated)",
            not duplicated,
            f"{len(duplicated)} duplicated{sample(duplicated)}",
        ),
        Check(
            "no two remote users share an external id",
            not shared_ids,
            f"{len(shared_ids)} shared{sample(shared_ids)}",
        ),
        Check(
            "every live user has its latest mapped profile remotely (0 stale)",
            not stale_profile,
            f"{len(stale_profile)} stale{sample(stale_profile)}",
        ),
        Check(
            "every live user has its latest avatar remotely (0 stale)",
            not stale_avatar,
            f"{len(stale_avatar)} stale{sample(stale_avatar)}",
        ),
        Check(
            "every link is synced and points at its remote user",
            not stale_links,
            f"{len(stale_links)} off{sample(stale_links)}",
        ),
        Check(
            "every deleted user is gone remotely",
            not resurrected and not open_tombstones,
            f"{len(resurrected)} still remote, {len(open_tombstones)} tombstones open"
            f"{sample(resurrected or open_tombstones)}",
        ),
        Check(
            "no remote user without a live local user (0 orphans)",
            not orphans,
            f"{len(orphans)} orphans{sample(orphans)}",
        ),
        Check(
            "nothing from a rolled-back transaction reached the remote",
            not rolled_back,
            f"{len(rolled_back)} remote users from rolled-back saves{sample(rolled_back)}",
        ),
        Check(
            "no dead letters (failed rows) but the deliberately invalid users",
            not dead_letters,
            f"{len(dead_letters)} failed{sample(dead_letters)}",
        ),
        Check(
            "every deliberately invalid user is failed with ConnectyCube's reason, not remote",
            not invalid_off and len(invalid_ids) == len(workload.invalid),
            f"{len(invalid_ids) - len(invalid_off)}/{len(workload.invalid)} as expected"
            f"{sample(invalid_off)}",
        ),
        Check(
            "no session token, credential or derived password in the logs",
            not leaked_tokens and not leaked_passwords and not leaked_fixed and bool(text),
            f"{len(leaked_tokens)} tokens, {len(leaked_passwords)} passwords, "
            f"secrets {leaked_fixed or 'none'} in {len(text)} bytes of logs",
        ),
        Check(
            "no plaintext session token in the database",
            not plaintext and bool(stored_tokens),
            f"{len(raw_tokens)} stored sessions, {len(plaintext)} in plaintext",
        ),
        Check(
            "the chaos happened as configured",
            chaos.kills >= chaos.kills_planned
            and sum(tally.counts.values()) > 0
            and chaos.broker_down_saves > 0
            and chaos.broker_was_down
            and enqueue_failures > 0,
            f"{chaos.kills}/{chaos.kills_planned} kills, {sum(tally.counts.values())} faults, "
            f"{chaos.broker_down_saves} operations while the broker was down "
            f"(Redis {'stayed down' if chaos.broker_was_down else 'restarted by another'}), "
            f"{enqueue_failures} failed enqueues",
        ),
        *_phase_checks(chaos, text),
    ]
    return checks, figures


def _phase_checks(chaos: Chaos, text: str) -> list[Check]:
    """The outage, the malformed answers and the failing mapping: each happened, and the
    requests the outage saw stayed under the bound."""
    from benchmarks.chaos_faults import MAPPING_FAULT_MESSAGE

    outage = chaos.outage
    mapping_failures = text.count(MAPPING_FAULT_MESSAGE)
    return [
        Check(
            f"requests during the {outage.seconds:.0f} s outage stay under the bound",
            outage.happened and outage.requests <= chaos.request_bound,
            f"{outage.requests} requests (bound {chaos.request_bound}) in "
            f"{outage.ended - outage.began:.1f} s, {chaos.outage_saves} operations meanwhile",
        ),
        Check(
            "malformed 2xx answers were injected (their creates happened)",
            chaos.malformed_applied > 0,
            f"{chaos.malformed_applied} answers with a garbage body",
        ),
        Check(
            "the mapping callable failed, and was recorded on the rows",
            mapping_failures > 0,
            f"{mapping_failures} log lines with its exception",
        ),
    ]


def print_report(
    args: argparse.Namespace,
    workload: Workload,
    chaos: Chaos,
    tally: FaultTally,
    server: EmulatorServer,
    redis: OwnRedis,
    services: tuple[Sweeper, Supervisor],
    figures: dict[str, int],
    driver_log: Path,
    durations: tuple[float, float, float],
) -> None:
    total_seconds, workload_seconds, drain_seconds = durations
    sweeper, supervisor = services
    requests_total = requests.get(f"{server.url}/_emulator/requests", timeout=10).json()
    enqueue_failures = driver_log.read_text(errors="replace").count("Could not enqueue")
    ops_total = sum(workload.ops.values())
    print(
        f"users: {args.users} created, {workload.ops['re-create']} re-created, "
        f"{len(workload.deleted_pks)} deleted, {len(workload.invalid)} invalid on purpose, "
        f"{len(workload.live)} live at the end"
    )
    print(
        f"operations: {ops_total} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(workload.ops.items()))
        + ")"
    )
    print(
        f"faults injected: {sum(tally.counts.values())} ("
        + ", ".join(f"{k} {tally.counts[k]}" for k in ("5xx", "429", "timeout", "drop"))
        + f") of {requests_total['total']} ConnectyCube requests; "
        f"{chaos.malformed_applied} malformed 2xx answers"
    )
    print(
        f"outage: {chaos.outage.seconds:.0f} s of ConnectyCube down ({args.time_scale:g}x "
        f"compressed: {chaos.outage.seconds * args.time_scale / 60:.0f} min in production "
        f"time), {chaos.outage.requests} requests reached it (bound {chaos.request_bound}), "
        f"{chaos.outage_saves} operations meanwhile"
    )
    print(
        f"kills: {chaos.kills} SIGKILLs ({chaos.pool_kills} pool processes, "
        f"{chaos.worker_kills} whole workers; {chaos.processes_killed} processes) "
        f"across {args.workers} workers x {args.concurrency}; supervisor restarted "
        f"{supervisor.restarts} workers ({supervisor.unplanned} that exited on their own, "
        f"{supervisor.failed_starts} failed starts)"
    )
    print(
        f"redis (own, port {redis.port}) restarts: {redis.restarts} (1 restart losing queued "
        f"messages, 1 broker-down window of {chaos.broker_down_seconds:.1f} s with "
        f"{chaos.broker_down_saves} operations; {enqueue_failures} enqueues failed)"
    )
    print(f"sweeps: {sweeper.runs} runs re-enqueued {sweeper.sent} rows")
    print(
        f"duration: {total_seconds:.1f} s total (workload {workload_seconds:.1f} s, "
        f"drain {drain_seconds:.1f} s); {total_seconds / args.users * 1000:.1f} ms per user"
    )
    print(
        f"outcome: {figures['lost']} lost, {figures['duplicated']} duplicated, "
        f"{figures['stale']} stale, {figures['orphans']} orphans, "
        f"{figures['dead letters']} dead letters",
        flush=True,
    )
