"""Chaos run: real PostgreSQL, Redis, ≥ 2 Celery workers and the emulator, under injected faults.

``python -m benchmarks.chaos --users 1000 --seed 1 --workers 2 --kills 10``

Why it exists: "nothing lost, nothing duplicated, nothing stuck" is only as credible as the worst
conditions it was checked under. This driver creates its own PostgreSQL database, starts its own
``redis-server`` on a free port (and never touches another), starts the emulator (in this process,
so it can count every fault it injects and every token it issues) and worker subprocesses sharing
one Redis queue, then runs a seeded random workload (:mod:`benchmarks.chaos_workload`) while it:

* injects emulator faults (5xx, 429 + Retry-After, timeouts, dropped connections);
* SIGKILLs worker processes, restarts Redis (losing every queued message) and keeps saving
  through a broker-down window;
* answers creates and updates that were carried out with a malformed body;
* makes the project's mapping callable raise for some users for a while;
* takes ConnectyCube down altogether for ``--outage-seconds``, longer than the whole life of
  the retry policy this project used to have, counting the requests that still reach it;
* creates a few users ConnectyCube refuses (the only rows allowed to end ``failed``).

Its workers run supervised, as production runs them: :class:`~benchmarks.chaos_services.Supervisor`
restarts any worker whose process is gone, after a planned kill or a crash of its own. The run
has production's settings (:mod:`benchmarks.chaos_settings`) with time compressed by
``--time-scale``: every duration among the package's defaults (give-up horizon, backoff, breaker
cool-downs, countdown bound, sweep, lease, client timeouts) and the broker's visibility timeout
is divided by it, so 3 days of retrying take 3 days / scale. It then waits (bounded) for
quiescence, nobody acting, and checks the emulator's state against the database
(:mod:`benchmarks.chaos_checks`): one line per figure, one per invariant, a final
``N passed, M failed``; the exit status is non-zero on any violation.

The workload and the fault rules are seeded, so a run is repeatable in what it does; the exact
interleaving with the workers is not (that is the point of running real processes).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from benchmarks.chaos_checks import Check, check_invariants, print_report  # noqa: E402
from benchmarks.chaos_faults import (  # noqa: E402
    MAPPING_FAULT_ENV,
    FaultTally,
    MappingFault,
    Outage,
    compressed,
    request_bound,
)
from benchmarks.chaos_services import (  # noqa: E402
    OwnRedis,
    Supervisor,
    Sweeper,
    admin_url,
    create_database,
    drop_database,
    owed_count,
    wait_for_quiescence,
)
from benchmarks.chaos_workload import Workload  # noqa: E402
from django_connectycube.emulator import EmulatorServer  # noqa: E402

logger = logging.getLogger("benchmarks.chaos")

#: The largest time scale: production's 30 s read timeout becomes 1 s.
MAX_TIME_SCALE = 30.0

#: The routes whose success answers the malformed phase garbles (a create, an update).
MALFORMED_ROUTES = r"POST /users|PUT /users/\d+"


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class Chaos:
    """The injected events, scheduled by workload step (as fractions of the run) from the seed."""

    kills_planned: int
    kill_steps: set[int]
    invalid_steps: set[int]
    restart_step: int
    malformed_step: int
    broker_down_step: int
    broker_down_seconds: float
    mapping_steps: tuple[int, int]
    outage_step: int
    outage: Outage
    request_bound: int
    kills: int = 0
    pool_kills: int = 0
    worker_kills: int = 0
    processes_killed: int = 0
    broker_down_saves: int = 0
    broker_was_down: bool = False
    outage_saves: int = 0
    malformed_applied: int = 0


def _kill(supervisor: Supervisor, chaos: Chaos, rng: random.Random) -> None:
    """SIGKILL one pool process (most kills) or a whole worker (every third, which the
    supervisor restarts), then go on."""
    worker = rng.choice(supervisor.workers)
    if chaos.kills % 3 == 2:
        if not worker.alive:
            return  # the supervisor is bringing it back: kill it when it is up
        supervisor.kill(worker)
        chaos.worker_kills += 1
        chaos.processes_killed += 1 + worker.concurrency
    else:
        children = worker.children()
        if not children:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(rng.choice(children), signal.SIGKILL)
        chaos.pool_kills += 1
        chaos.processes_killed += 1
    chaos.kills += 1


def _background_faults(args: argparse.Namespace) -> dict[str, Any]:
    """The random faults that run all along (lifted during the outage, which has its own)."""
    _, read_timeout = compressed(args.time_scale)["TIMEOUT"]
    return {
        "error_rate": args.error_rate,
        "statuses": [500, 502, 503, 504],
        "rate_limit_rate": args.rate_limit_rate,
        "retry_after": 1,
        "timeout_rate": args.timeout_rate,
        "timeout_seconds": read_timeout + 0.5,
        "drop_rate": args.drop_rate,
        "seed": args.seed,
    }


def _environment(
    args: argparse.Namespace, server: EmulatorServer, redis: OwnRedis, db_name: str, work: Path
) -> dict[str, str]:
    """Settings of the driver and the workers (``benchmarks.chaos_settings`` reads them)."""
    emulator = server.emulator
    rng = random.Random(args.seed)
    return {
        "DJANGO_SETTINGS_MODULE": "benchmarks.chaos_settings",
        "DATABASE_URL": admin_url(args.database_url, db_name),
        "CELERY_BROKER_URL": redis.url(0),
        "CHAOS_CACHE_URL": redis.url(1),
        "CHAOS_TIME_SCALE": str(args.time_scale),
        MAPPING_FAULT_ENV: str(work / "mapping-fault"),
        "MEDIA_ROOT": str(work / "media"),
        "CONNECTYCUBE_API_URL": server.url,
        "CONNECTYCUBE_APPLICATION_ID": str(emulator.application_id),
        "CONNECTYCUBE_AUTH_KEY": emulator.auth_key,
        "CONNECTYCUBE_AUTH_SECRET": emulator.auth_secret,
        "CONNECTYCUBE_PASSWORD_SECRET": f"chaos-pw-{rng.randrange(16**12):012x}",
    }


def _schedule(
    args: argparse.Namespace, rng: random.Random, total: int, server: EmulatorServer
) -> Chaos:
    """When each event happens, as a step of the workload (apart from one another, so each
    failure is the only one of its kind at the time: a Redis outage also takes the shared
    circuit breaker's cache away, for instance)."""
    from django_connectycube.conf import DEFAULTS
    from django_connectycube.sync.breaker import COOLDOWN_GROWTH

    at = lambda share: int(total * share)  # noqa: E731
    outage = Outage(server, args.outage_seconds, _background_faults(args))
    policy = compressed(args.time_scale)
    bound = request_bound(
        seconds=args.outage_seconds,
        processes=args.workers * args.concurrency,
        retries=int(DEFAULTS["RETRIES"]),
        threshold=int(DEFAULTS["CIRCUIT_BREAKER_THRESHOLD"]),
        cooldown=policy["CIRCUIT_BREAKER_COOLDOWN"],
        cooldown_max=policy["CIRCUIT_BREAKER_COOLDOWN"] * COOLDOWN_GROWTH,
    )
    return Chaos(
        kills_planned=args.kills,
        kill_steps=set(rng.sample(range(at(0.05), at(0.95)), args.kills)),
        invalid_steps={at(0.10) + i for i in range(args.invalid_users)},
        restart_step=at(0.20),
        malformed_step=at(0.25),
        broker_down_step=at(0.40),
        broker_down_seconds=args.broker_down_seconds,
        mapping_steps=(at(0.60), at(0.80)),
        outage_step=at(0.82),
        outage=outage,
        request_bound=bound,
    )


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    began = time.monotonic()
    db_name = f"cube_chaos_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="cube-chaos-"))
    driver_log = work / "driver.log"
    redis = OwnRedis(work / "redis")
    redis.start()
    create_database(args.database_url, db_name)
    server = EmulatorServer(
        application_id=1,
        auth_key=f"chaos-key-{rng.randrange(16**12):012x}",
        auth_secret=f"chaos-secret-{rng.randrange(16**12):012x}",
    ).start()
    tally = FaultTally(server)
    env = _environment(args, server, redis, db_name, work)
    os.environ.update(env)
    queue = f"cube-chaos-{os.getpid()}"
    os.environ["CONNECTYCUBE_TASK_QUEUE"] = queue

    import django

    django.setup()
    _log_to(driver_log)

    from django.core.management import call_command
    from django.db import close_old_connections, connection

    from tests.malformed import MalformedSuccess
    from tests.worker import Worker

    workers: list[Worker] = []
    supervisor = Supervisor(workers)
    sweeper: Sweeper | None = None
    mapping_fault = MappingFault(Path(env[MAPPING_FAULT_ENV]))
    malformed = MalformedSuccess(server.emulator, MALFORMED_ROUTES, count=args.malformed)
    status = 1
    try:
        call_command("migrate", verbosity=0)
        print(f"seed: {args.seed}", flush=True)
        for i in range(args.workers):
            workers.append(_worker(args, env, server, queue, work / f"worker{i}.log"))
        for worker in workers:
            worker.start(timeout=60)
        supervisor.start()
        server.emulator.set_fault("*", **_background_faults(args))
        sweeper = Sweeper(interval=1.0)
        sweeper.start()

        total_steps = args.users * args.ops_per_user
        workload = Workload(rng=random.Random(args.seed + 1), users=args.users)
        chaos = _schedule(args, rng, total_steps, server)
        workload_seconds = _drive(
            args, workload, chaos, supervisor, redis, rng, total_steps, (malformed, mapping_fault)
        )

        # Quiescence, nobody acting, under the same faults (--calm-drain lifts them) once the
        # outage is over.
        chaos.outage.wait()
        mapping_fault.end()
        chaos.malformed_applied = malformed.applied
        if args.calm_drain:
            server.emulator.clear_faults()
        done, drain_seconds = wait_for_quiescence(args.drain_timeout)
        server.emulator.clear_faults()
        malformed.remove()
        time.sleep(1.0)
        supervisor.stop()
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
                f"quiescent within {args.drain_timeout:.0f} s, nobody acting",
                done,
                f"{drain_seconds:.1f} s, {owed_count()} rows still owed",
            ),
        )
        total_seconds = time.monotonic() - began
        print_report(
            args,
            workload,
            chaos,
            tally,
            server,
            redis,
            (sweeper, supervisor),
            figures,
            driver_log,
            (total_seconds, workload_seconds, drain_seconds),
        )
        for check in checks:
            print(f"{'PASS' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        failed = sum(not c.ok for c in checks)
        print(f"{len(checks) - failed} passed, {failed} failed", flush=True)
        status = 1 if failed else 0
        if failed or args.keep:
            print(f"logs kept in {work}", flush=True)
    finally:
        if supervisor.is_alive():
            supervisor.stop()
        if sweeper is not None and sweeper.is_alive():
            sweeper.stop()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.kill()
        mapping_fault.end()
        malformed.remove()
        redis.close()
        server.stop()
        connection.close()
        if not args.keep_db:
            drop_database(args.database_url, db_name)
        if status == 0 and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return status


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("django_connectycube", "celery", "kombu", "benchmarks.chaos"):
        log = logging.getLogger(name)
        log.handlers = [handler]
        log.propagate = False
        log.setLevel(logging.DEBUG if name == "django_connectycube" else logging.INFO)


def _worker(
    args: argparse.Namespace, env: dict[str, str], server: EmulatorServer, queue: str, log: Path
) -> Any:
    from tests.worker import Worker

    emulator = server.emulator
    prefixes = ("CONNECTYCUBE", "DJANGO", "CELERY", "MEDIA", "CHAOS")
    return Worker(
        broker_url=env["CELERY_BROKER_URL"],
        database_url=env["DATABASE_URL"],
        connectycube={
            "API_URL": server.url,
            "APPLICATION_ID": emulator.application_id,
            "AUTH_KEY": emulator.auth_key,
            "AUTH_SECRET": emulator.auth_secret,
        },
        concurrency=args.concurrency,
        queue=queue,
        log_path=log,
        extra_env={k: v for k, v in env.items() if k.startswith(prefixes)},
    )


def _drive(
    args: argparse.Namespace,
    workload: Workload,
    chaos: Chaos,
    supervisor: Supervisor,
    redis: OwnRedis,
    rng: random.Random,
    total_steps: int,
    phases: tuple[Any, MappingFault],
) -> float:
    """Run the workload step by step, firing each scheduled event; returns its duration."""
    malformed, mapping_fault = phases
    began = time.monotonic()

    def pace(step: int) -> None:
        """Paced, so updates meet users that are already on the remote."""
        if args.rate > 0:
            delay = began + step / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def one(step: int) -> None:
        fire(step)
        workload.step(total_steps - step)
        if chaos.outage.began and not chaos.outage.ended:
            chaos.outage_saves += 1

    def fire(step: int) -> None:
        """The events of this step (the broker-down window is the loop's own)."""
        if step in chaos.kill_steps:
            _kill(supervisor, chaos, rng)
        if step in chaos.invalid_steps:
            workload.create_invalid()
        if step == chaos.restart_step:
            logger.info("restarting Redis (queued messages are lost)")
            redis.restart()
        if step == chaos.malformed_step:
            logger.info("malformed 2xx answers for the next %s creates/updates", args.malformed)
            malformed.install()
        if step == chaos.mapping_steps[0]:
            logger.info("the mapping callable starts failing for some users")
            mapping_fault.start()
        if step >= chaos.mapping_steps[1] and mapping_fault.active and mapping_fault.seen():
            mapping_fault.end()  # ended once a push has met it (else with the workload)
        if step == chaos.outage_step:
            logger.info("ConnectyCube down for %.0f s", chaos.outage.seconds)
            chaos.outage.start()

    step = 0
    while step < total_steps:
        pace(step)
        if step == chaos.broker_down_step:
            logger.info("broker down for %.1f s while saves go on", chaos.broker_down_seconds)
            down_began = time.monotonic()
            redis.stop()
            try:
                while (
                    time.monotonic() - down_began < chaos.broker_down_seconds and step < total_steps
                ):
                    one(step)
                    chaos.broker_down_saves += 1
                    step += 1
                    pace(step)
            finally:
                chaos.broker_was_down = not redis.ping()
                redis.start()
                redis.restarts += 1
                redis.down_seconds += time.monotonic() - down_began
            continue
        one(step)
        step += 1
    while chaos.kills < chaos.kills_planned:  # a kill found no pool process: try again
        _kill(supervisor, chaos, rng)
        time.sleep(0.5)
    return time.monotonic() - began


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
    parser.add_argument("--broker-down-seconds", type=float, default=4.0)
    parser.add_argument(
        "--outage-seconds",
        type=float,
        default=40.0,
        help="ConnectyCube down altogether for this long (default 40 s: at --time-scale 15 "
        "that is 10 minutes, past the old policy's 8 attempts in about 4 minutes)",
    )
    parser.add_argument("--malformed", type=int, default=15, help="2xx answers with a garbage body")
    parser.add_argument(
        "--invalid-users", type=int, default=3, help="users ConnectyCube refuses, on purpose"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=15.0,
        help="divide every duration of production's settings by this (3 days of retrying take "
        f"3 days / scale; at most {MAX_TIME_SCALE:g}, which leaves the 30 s read timeout 1 s)",
    )
    parser.add_argument("--drain-timeout", type=float, default=None)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CHAOS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server to create the run's own database on (through this database)",
    )
    parser.add_argument(
        "--calm-drain", action="store_true", help="lift the emulator faults while draining"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and media")
    parser.add_argument("--keep-db", action="store_true", help="keep the chaos database")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be at least 2")
    if not 1 <= args.time_scale <= MAX_TIME_SCALE:
        parser.error(
            f"--time-scale must be between 1 (production time) and {MAX_TIME_SCALE:g} (beyond, "
            "a request has under a second and loopback timeouts become the test)"
        )
    if args.drain_timeout is None:
        # Production's backoff lets a row that failed throughout the outage wait up to
        # a 72nd of RETRY_HORIZON between two attempts (sync.policy.BACKOFF_SHARE, not
        # importable before Django is set up), and a faulty answer during the drain can make it
        # wait that long again.
        backoff_max = compressed(args.time_scale)["RETRY_HORIZON"] / 72
        args.drain_timeout = max(180.0, args.users * 0.6) + 2 * backoff_max
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
