"""Chaos run: real PostgreSQL, Redis, ≥ 2 Celery workers and the emulator, under injected faults.

``python -m benchmarks.chaos --users 1000 --seed 1 --workers 2 --kills 10``

Why it exists: "nothing lost, nothing duplicated" is only as credible as the worst conditions it
was checked under. This driver creates its own PostgreSQL database, starts the emulator (in this
process, so it can count every fault it injects and every token it issues) and worker
subprocesses sharing one Redis queue, then runs a seeded random workload of creates, profile and
avatar changes, deletes, re-creates, bursts and rolled-back saves, while it injects emulator
faults (5xx, 429 + Retry-After, timeouts, dropped connections), SIGKILLs worker processes, restarts
Redis (losing every queued message) and keeps saving through a broker-down window. It then waits
(bounded) for quiescence and checks the emulator's state against the database: one line per
figure, one line per invariant, and a final ``N passed, M failed``; the exit status is non-zero
on any violation.

The workload and the fault rule are seeded, so a run is repeatable in what it does; the exact
interleaving with the workers is not (that is the point of running real processes).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from django_connectycube.emulator import EmulatorServer  # noqa: E402

logger = logging.getLogger("benchmarks.chaos")

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
ROLLBACK_MARK = "ROLLBACK"
TOKEN_RE = re.compile(r"[0-9a-f]{40}")
WORD_RE = re.compile(r"[A-Za-z0-9_\-]{16,}")


# ---- services -----------------------------------------------------------------------------


@dataclass
class Redis:
    """The local Redis server: stop it (losing everything, as a crash would) and start it again.

    Starting uses the exact command line the CI uses, so the server left behind is the usual one.
    """

    url: str
    restarts: int = 0
    down_seconds: float = 0.0

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 6379

    def ping(self) -> bool:
        try:
            out = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"],
                capture_output=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.stdout.strip() == b"PONG"

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        deadline = time.monotonic() + 10
        while self.ping() and time.monotonic() < deadline:
            time.sleep(0.1)

    def start(self) -> None:
        for folder in ("/var/lib/redis", "/var/log/redis"):
            Path(folder).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ],
            capture_output=True,
            timeout=15,
            check=False,
        )
        deadline = time.monotonic() + 20
        while not self.ping():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis did not come back on port {self.port}")
            time.sleep(0.1)

    def restart(self) -> None:
        began = time.monotonic()
        self.stop()
        self.start()
        self.restarts += 1
        self.down_seconds += time.monotonic() - began

    def ensure_up(self) -> None:
        """Never leave a dead Redis behind, whatever happened to the run."""
        if not self.ping():
            self.start()


def admin_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def _pg_connect(url: str) -> Any:
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
        autocommit=True,
    )


def create_database(url: str, name: str) -> None:
    with _pg_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str, name: str) -> None:
    with _pg_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the emulator, instrumented ---------------------------------------------------------------


class FaultTally:
    """Counts what the emulator's fault rules did, by kind, and every token it issued."""

    def __init__(self, server: EmulatorServer) -> None:
        self.counts: Counter[str] = Counter()
        self.tokens: set[str] = set()
        self._lock = threading.Lock()
        emulator = server.emulator
        decide = emulator.faults.decide

        def counted_decide(template: str, concrete: str) -> Any:
            decision = decide(template, concrete)
            if decision is not None:
                kind = (
                    "drop"
                    if decision.drop
                    else "timeout"
                    if decision.hold is not None
                    else "429"
                    if decision.status == 429
                    else "5xx"
                    if decision.status is not None
                    else None
                )
                if kind:
                    with self._lock:
                        self.counts[kind] += 1
            return decision

        emulator.faults.decide = counted_decide  # type: ignore[method-assign]
        create_session = emulator.store.create_session

        def recorded_create_session(*args: Any, **kwargs: Any) -> Any:
            session = create_session(*args, **kwargs)
            with self._lock:
                self.tokens.add(session.token)
            return session

        emulator.store.create_session = recorded_create_session  # type: ignore[method-assign]


# ---- the workload -----------------------------------------------------------------------------


@dataclass
class Workload:
    """The seeded sequence of local changes, and what it leaves behind to check against."""

    rng: random.Random
    users: int
    ops: Counter[str] = field(default_factory=Counter)
    created: int = 0
    live: dict[int, str] = field(default_factory=dict)  # pk -> username
    deleted_pks: set[int] = field(default_factory=set)
    reusable: list[str] = field(default_factory=list)  # usernames of deleted users
    rollback_logins: set[str] = field(default_factory=set)
    serial: int = 0

    def _user_model(self) -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model()

    def _profile(self, username: str) -> dict[str, Any]:
        rng = self.rng
        return {
            "email": f"{username}@example.com",
            "first_name": rng.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", ""]),
            "last_name": f"L{rng.randrange(10**6)}",
            "phone": f"+44{rng.randrange(10**9):09d}" if rng.random() < 0.5 else "",
            "tags": ",".join(rng.sample(["red", "green", "blue", "ops", "dev"], rng.randint(0, 3))),
        }

    def _avatar(self, pk: int) -> tuple[str, bytes]:
        self.serial += 1
        size = self.rng.randint(64, 1500)
        return f"a{pk}-{self.serial}.png", PNG_HEADER + self.rng.randbytes(size)

    def create(self, username: str | None = None) -> None:
        from django.core.files.base import ContentFile

        User = self._user_model()
        recreate = username is not None
        if username is None:
            username = f"chaos{self.created:05d}"
            self.created += 1
        user = User.objects.create(username=username, **self._profile(username))
        if self.rng.random() < 0.2:
            name, content = self._avatar(user.pk)
            user.avatar.save(name, ContentFile(content), save=True)
        self.live[user.pk] = username
        self.ops["re-create" if recreate else "create"] += 1

    def pick(self) -> Any:
        pk = self.rng.choice(sorted(self.live))
        return self._user_model().objects.get(pk=pk)

    def update_profile(self) -> None:
        user = self.pick()
        for key, value in self._profile(user.username).items():
            if key != "email" and self.rng.random() < 0.6:
                setattr(user, key, value)
        user.save()
        self.ops["profile update"] += 1

    def update_unmapped(self) -> None:
        user = self.pick()
        user.bio = f"bio {self.rng.randrange(10**6)}"
        user.save(update_fields=["bio"])
        self.ops["unmapped update"] += 1

    def change_avatar(self) -> None:
        from django.core.files.base import ContentFile

        user = self.pick()
        if user.avatar and self.rng.random() < 0.25:
            user.avatar = None
            user.save()
            self.ops["avatar removed"] += 1
            return
        name, content = self._avatar(user.pk)
        user.avatar.save(name, ContentFile(content), save=True)
        self.ops["avatar change"] += 1

    def delete(self) -> None:
        user = self.pick()
        pk, username = user.pk, user.username
        user.delete()
        del self.live[pk]
        self.deleted_pks.add(pk)
        self.reusable.append(username)
        self.ops["delete"] += 1

    def recreate(self) -> None:
        username = self.reusable.pop(self.rng.randrange(len(self.reusable)))
        self.create(username)

    def burst(self) -> None:
        user = self.pick()
        for i in range(self.rng.randint(5, 25)):
            user.first_name = f"burst{i}-{self.rng.randrange(1000)}"
            user.save()
        self.ops["burst"] += 1

    def rolled_back(self) -> None:
        from django.db import transaction

        User = self._user_model()
        kind = self.rng.choice(["create", "update", "delete"])

        class Rollback(Exception):
            pass

        with contextlib.suppress(Rollback), transaction.atomic():
            if kind == "create":
                login = f"rb-{self.serial}-{self.rng.randrange(10**6)}"
                self.serial += 1
                self.rollback_logins.add(login)
                User.objects.create(username=login, first_name=ROLLBACK_MARK)
            elif kind == "update":
                user = self.pick()
                user.first_name = ROLLBACK_MARK
                user.save()
            else:
                self.pick().delete()
            raise Rollback
        self.ops[f"rolled-back {kind}"] += 1

    def step(self, remaining_steps: int) -> None:
        """One operation; creates are spread so that all ``users`` exist by the end."""
        remaining_creates = self.users - self.created
        if remaining_creates and (
            len(self.live) < 2 or self.rng.random() < remaining_creates / max(remaining_steps, 1)
        ):
            self.create()
            return
        choices: list[tuple[Callable[[], None], int]] = [
            (self.update_profile, 30),
            (self.update_unmapped, 5),
            (self.change_avatar, 15),
            (self.delete, 8 if len(self.live) > 2 else 0),
            (self.recreate, 6 if self.reusable else 0),
            (self.burst, 5),
            (self.rolled_back, 7),
        ]
        funcs, weights = zip(*choices, strict=True)
        self.rng.choices(funcs, weights)[0]()


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class Chaos:
    """The injected events, scheduled by workload step from the seed."""

    kills_planned: int
    kill_steps: set[int]
    restart_step: int
    broker_down_step: int
    broker_down_seconds: float
    kills: int = 0
    pool_kills: int = 0
    worker_kills: int = 0
    processes_killed: int = 0
    broker_down_saves: int = 0
    broker_was_down: bool = False


class Sweeper(threading.Thread):
    """``outbox.sweep()`` every few seconds, as Celery beat would run it in production."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="chaos-sweeper", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()
        self.runs = 0
        self.sent = 0
        self.errors = 0

    def run(self) -> None:
        from django.db import close_old_connections, connection

        from django_connectycube import outbox

        try:
            while not self.stopping.wait(self.interval):
                try:
                    self.sent += outbox.sweep()
                    self.runs += 1
                except Exception:  # the database or broker hiccuped: try next time
                    self.errors += 1
                    logger.exception("sweep failed")
                    close_old_connections()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def _kill(workers: list[Any], chaos: Chaos, rng: random.Random) -> None:
    """SIGKILL one pool process (most kills) or a whole worker (every third), then go on."""
    worker = rng.choice(workers)
    if chaos.kills % 3 == 2:
        worker.kill()
        chaos.worker_kills += 1
        chaos.processes_killed += 1 + worker.concurrency
        worker.start(timeout=60)
    else:
        children = worker.children()
        if not children:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(rng.choice(children), signal.SIGKILL)
        chaos.pool_kills += 1
        chaos.processes_killed += 1
    chaos.kills += 1


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def _remote_state(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_emulator/state", timeout=30).json()


def _owed_count() -> int:
    from django_connectycube.models import CubeUser

    return CubeUser.objects.owed().count()


def wait_for_quiescence(timeout: float, sweep_after: float) -> tuple[bool, float]:
    """Wait until nothing is owed for a few polls in a row (bounded by ``timeout``)."""
    from django.db import close_old_connections

    began = time.monotonic()
    quiet = 0
    while time.monotonic() - began < timeout:
        close_old_connections()
        if _owed_count() == 0:
            quiet += 1
            if quiet >= 3:
                return True, time.monotonic() - began
        else:
            quiet = 0
        time.sleep(1.0)
    return False, time.monotonic() - began


def check_invariants(
    workload: Workload, server: EmulatorServer, tally: FaultTally, logs: list[Path], chaos: Chaos
) -> tuple[list[Check], dict[str, int]]:
    """Compare the emulator's state with the database; every invariant is one check."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from django_connectycube import identity, mapping
    from django_connectycube.conf import app_settings
    from django_connectycube.models import CubeSession, CubeUser

    User = get_user_model()
    state = _remote_state(server.url)
    remote_users = state["users"]
    by_external: dict[str, list[dict[str, Any]]] = {}
    for remote in remote_users:
        by_external.setdefault(str(remote.get("external_id")), []).append(remote)

    live = list(User.objects.all().order_by("pk"))
    links = {link.external_id: link for link in CubeUser.objects.all()}
    link_of = {link.user_id: link for link in links.values() if link.user_id is not None}
    live_ids = {link_of[u.pk].external_id for u in live if u.pk in link_of}
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
    dead_letters = list(
        CubeUser.objects.filter(state=CubeUser.State.FAILED).values_list(
            "external_id", "last_error"
        )
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
            "no dead letters (failed rows)",
            not dead_letters,
            f"{len(dead_letters)} failed{sample(dead_letters)}",
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
    ]
    return checks, figures


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    began = time.monotonic()
    db_name = f"cube_chaos_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="cube-chaos-"))
    driver_log = work / "driver.log"
    redis = Redis(args.redis_url)
    redis.ensure_up()
    create_database(args.database_url, db_name)
    server = EmulatorServer(
        application_id=1,
        auth_key=f"chaos-key-{rng.randrange(16**12):012x}",
        auth_secret=f"chaos-secret-{rng.randrange(16**12):012x}",
    ).start()
    tally = FaultTally(server)
    emulator = server.emulator
    sweep_after = args.sweep_after
    env = {
        "DJANGO_SETTINGS_MODULE": "benchmarks.chaos_settings",
        "DATABASE_URL": admin_url(args.database_url, db_name),
        "CELERY_BROKER_URL": args.redis_url,
        "CELERY_VISIBILITY_TIMEOUT": str(args.visibility_timeout),
        "MEDIA_ROOT": str(work / "media"),
        "CONNECTYCUBE_API_URL": server.url,
        "CONNECTYCUBE_APPLICATION_ID": str(emulator.application_id),
        "CONNECTYCUBE_AUTH_KEY": emulator.auth_key,
        "CONNECTYCUBE_AUTH_SECRET": emulator.auth_secret,
        "CONNECTYCUBE_PASSWORD_SECRET": f"chaos-pw-{rng.randrange(16**12):012x}",
        "CONNECTYCUBE_READ_TIMEOUT": str(args.read_timeout),
        "CONNECTYCUBE_CONNECT_TIMEOUT": "2",
        "CONNECTYCUBE_SWEEP_AFTER": str(sweep_after),
        "CONNECTYCUBE_TASK_MAX_ATTEMPTS": str(args.max_attempts),
        "CONNECTYCUBE_LEASE_SECONDS": str(args.lease_seconds),
        "CONNECTYCUBE_TASK_BACKOFF_BASE": "0.2",
        "CONNECTYCUBE_TASK_BACKOFF_MAX": "3",
        "CONNECTYCUBE_RETRIES": "1",
    }
    os.environ.update(env)
    queue = f"cube-chaos-{os.getpid()}"
    os.environ["CONNECTYCUBE_TASK_QUEUE"] = queue

    import django

    django.setup()
    handler = logging.FileHandler(driver_log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("django_connectycube", "celery", "kombu", "benchmarks.chaos"):
        log = logging.getLogger(name)
        log.handlers = [handler]
        log.propagate = False
        log.setLevel(logging.DEBUG if name == "django_connectycube" else logging.INFO)

    from django.core.management import call_command
    from django.db import close_old_connections, connection

    from tests.worker import Worker

    workers: list[Worker] = []
    sweeper: Sweeper | None = None
    status = 1
    try:
        call_command("migrate", verbosity=0)
        print(f"seed: {args.seed}", flush=True)
        for i in range(args.workers):
            workers.append(
                Worker(
                    broker_url=args.redis_url,
                    database_url=env["DATABASE_URL"],
                    connectycube={
                        "API_URL": server.url,
                        "APPLICATION_ID": emulator.application_id,
                        "AUTH_KEY": emulator.auth_key,
                        "AUTH_SECRET": emulator.auth_secret,
                    },
                    concurrency=args.concurrency,
                    queue=queue,
                    log_path=work / f"worker{i}.log",
                    extra_env={
                        k: v
                        for k, v in env.items()
                        if k.startswith(("CONNECTYCUBE", "DJANGO", "CELERY", "MEDIA"))
                    },
                )
            )
        for worker in workers:
            worker.start(timeout=60)
        requests.post(
            f"{server.url}/_emulator/faults",
            json={
                "route": "*",
                "error_rate": args.error_rate,
                "statuses": [500, 502, 503, 504],
                "rate_limit_rate": args.rate_limit_rate,
                "retry_after": 1,
                "timeout_rate": args.timeout_rate,
                "timeout_seconds": args.read_timeout + 0.5,
                "drop_rate": args.drop_rate,
                "seed": args.seed,
            },
            timeout=10,
        ).raise_for_status()
        sweeper = Sweeper(interval=2.0)
        sweeper.start()

        total_steps = args.users * args.ops_per_user
        workload = Workload(rng=random.Random(args.seed + 1), users=args.users)
        kill_steps = set(
            rng.sample(range(int(total_steps * 0.05), int(total_steps * 0.95)), args.kills)
        )
        chaos = Chaos(
            kills_planned=args.kills,
            kill_steps=kill_steps,
            restart_step=int(total_steps * 0.4),
            broker_down_step=int(total_steps * 0.7),
            broker_down_seconds=args.broker_down_seconds,
        )
        workload_began = time.monotonic()

        def pace(step: int) -> None:
            """Paced, so updates meet users that are already on the remote."""
            if args.rate > 0:
                delay = workload_began + step / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        step = 0
        while step < total_steps:
            pace(step)
            if step in chaos.kill_steps:
                _kill(workers, chaos, rng)
            if step == chaos.restart_step:
                logger.info("restarting Redis (queued messages are lost)")
                redis.restart()
            if step == chaos.broker_down_step:
                logger.info("broker down for %.1f s while saves go on", chaos.broker_down_seconds)
                down_began = time.monotonic()
                redis.stop()
                try:
                    while (
                        time.monotonic() - down_began < chaos.broker_down_seconds
                        and step < total_steps
                    ):
                        workload.step(total_steps - step)
                        chaos.broker_down_saves += 1
                        step += 1
                        pace(step)
                finally:
                    chaos.broker_was_down = not redis.ping()  # nobody restarted it meanwhile
                    redis.start()
                    redis.restarts += 1
                    redis.down_seconds += time.monotonic() - down_began
                continue
            workload.step(total_steps - step)
            step += 1
        while chaos.kills < chaos.kills_planned:  # a kill found no pool process: try again
            _kill(workers, chaos, rng)
            time.sleep(0.5)
        workload_seconds = time.monotonic() - workload_began

        # Quiescence under the same faults (the sweep keeps running); --calm-drain lifts them.
        if args.calm_drain:
            requests.delete(f"{server.url}/_emulator/faults", timeout=10)
        done, drain_seconds = wait_for_quiescence(args.drain_timeout, sweep_after)
        requests.delete(f"{server.url}/_emulator/faults", timeout=10)
        time.sleep(1.0)
        for worker in workers:
            worker.stop()
        sweeper.stop()
        close_old_connections()

        checks, figures = check_invariants(
            workload, server, tally, [driver_log, *(w.log_path for w in workers)], chaos
        )
        checks.insert(
            0,
            Check(
                f"quiescent within {args.drain_timeout:.0f} s",
                done,
                f"{drain_seconds:.1f} s, {_owed_count()} rows still owed",
            ),
        )
        requests_total = requests.get(f"{server.url}/_emulator/requests", timeout=10).json()
        enqueue_failures = driver_log.read_text(errors="replace").count("Could not enqueue")
        total_seconds = time.monotonic() - began
        ops_total = sum(workload.ops.values())
        print(
            f"users: {args.users} created, {workload.ops['re-create']} re-created, "
            f"{len(workload.deleted_pks)} deleted, {len(workload.live)} live at the end",
            flush=True,
        )
        print(
            f"operations: {ops_total} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(workload.ops.items()))
            + ")"
        )
        print(
            f"faults injected: {sum(tally.counts.values())} ("
            + ", ".join(f"{k} {tally.counts[k]}" for k in ("5xx", "429", "timeout", "drop"))
            + f") of {requests_total['total']} ConnectyCube requests"
        )
        print(
            f"kills: {chaos.kills} SIGKILLs ({chaos.pool_kills} pool processes, "
            f"{chaos.worker_kills} whole workers; {chaos.processes_killed} processes) "
            f"across {args.workers} workers x {args.concurrency}"
        )
        print(
            f"redis restarts: {redis.restarts} (1 restart losing queued messages, 1 broker-down "
            f"window of {chaos.broker_down_seconds:.1f} s with {chaos.broker_down_saves} "
            f"operations; {enqueue_failures} enqueues failed)"
        )
        print(f"sweeps: {sweeper.runs} runs re-enqueued {sweeper.sent} rows")
        print(
            f"duration: {total_seconds:.1f} s total (workload {workload_seconds:.1f} s, "
            f"drain {drain_seconds:.1f} s); {total_seconds / args.users * 1000:.1f} ms per user"
        )
        print(
            f"outcome: {figures['lost']} lost, {figures['duplicated']} duplicated, "
            f"{figures['stale']} stale, {figures['orphans']} orphans, "
            f"{figures['dead letters']} dead letters"
        )
        for check in checks:
            print(f"{'PASS' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        failed = sum(not c.ok for c in checks)
        print(f"{len(checks) - failed} passed, {failed} failed", flush=True)
        status = 1 if failed else 0
        if failed or args.keep:
            print(f"logs kept in {work}", flush=True)
    finally:
        if sweeper is not None and sweeper.is_alive():
            sweeper.stop()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.kill()
        redis.ensure_up()
        with contextlib.suppress(Exception):
            _purge_queue(args.redis_url, queue)
        server.stop()
        connection.close()
        if not args.keep_db:
            drop_database(args.database_url, db_name)
        if status == 0 and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return status


def _purge_queue(url: str, queue: str) -> None:
    import redis as redis_py

    client = redis_py.Redis.from_url(url, socket_timeout=5)
    client.delete(queue)
    client.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (>= 2)")
    parser.add_argument("--concurrency", type=int, default=4, help="pool size of each worker")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of worker processes")
    parser.add_argument("--ops-per-user", type=int, default=3)
    parser.add_argument(
        "--rate", type=float, default=25.0, help="operations per second (0: flat out)"
    )
    parser.add_argument("--error-rate", type=float, default=0.20, help="share of 5xx answers")
    parser.add_argument("--rate-limit-rate", type=float, default=0.05, help="share of 429s")
    parser.add_argument("--timeout-rate", type=float, default=0.05, help="share held past timeout")
    parser.add_argument("--drop-rate", type=float, default=0.02, help="share of dropped sockets")
    parser.add_argument("--read-timeout", type=float, default=2.0)
    parser.add_argument("--broker-down-seconds", type=float, default=4.0)
    parser.add_argument("--sweep-after", type=int, default=8)
    parser.add_argument("--lease-seconds", type=int, default=20)
    parser.add_argument("--max-attempts", type=int, default=1000)
    parser.add_argument("--visibility-timeout", type=int, default=10)
    parser.add_argument("--drain-timeout", type=float, default=None)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CHAOS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CHAOS_BROKER_URL", "redis://127.0.0.1:6379/5")
    )
    parser.add_argument(
        "--calm-drain", action="store_true", help="lift the emulator faults while draining"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and media")
    parser.add_argument("--keep-db", action="store_true", help="keep the chaos database")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be at least 2")
    if args.drain_timeout is None:
        args.drain_timeout = max(180.0, args.users * 0.6)
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
