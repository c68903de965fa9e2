"""The services a chaos run owns: its Redis server, its PostgreSQL database, its beat, and the
supervisor of its workers.

The run crashes and restarts Redis on purpose, so it must own that Redis: it starts
``redis-server`` itself, on a free port of 127.0.0.1, in a directory of its own, and stops only
that process. It never touches a Redis it did not start (another user's broker or cache on the
same machine is none of its business, whatever URL it was given).
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "OwnRedis",
    "Supervisor",
    "Sweeper",
    "admin_url",
    "create_database",
    "drop_database",
    "free_port",
    "owed_count",
    "wait_for_quiescence",
]

logger = logging.getLogger("benchmarks.chaos")


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A ``redis-server`` this process started, and the only one it ever stops.

    ``stop()`` kills it without saving (a crash: every queued message is lost); ``start()``
    brings a fresh one up on the same port, so workers reconnect to the same URL.
    """

    def __init__(self, folder: Path, *, binary: str = "redis-server") -> None:
        found = shutil.which(binary)
        if found is None:
            raise RuntimeError(f"{binary} is not installed (apt-get install redis-server)")
        self.binary = found
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.down_seconds = 0.0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def ping(self) -> bool:
        """Whether our server answers (a raw RESP PING: no client library needed)."""
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115  (closed with the process)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"our redis-server did not come up on port {self.port}: "
                    f"{(self.folder / 'redis.log').read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill our server (SIGKILL: nothing is saved) and wait until its port is free."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)

    def restart(self) -> None:
        began = time.monotonic()
        self.stop()
        self.start()
        self.restarts += 1
        self.down_seconds += time.monotonic() - began

    def close(self) -> None:
        """Stop our server for good (the end of the run)."""
        self.stop()


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


class Sweeper(threading.Thread):
    """``enqueue.sweep()`` every few seconds, as Celery beat would run it in production."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="chaos-sweeper", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()
        self.runs = 0
        self.sent = 0
        self.errors = 0

    def run(self) -> None:
        from django.db import close_old_connections, connection

        from django_connectycube.sync import enqueue

        try:
            while not self.stopping.wait(self.interval):
                try:
                    self.sent += enqueue.sweep()
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


class Supervisor(threading.Thread):
    """Restarts any worker whose main process is gone, as systemd or Kubernetes would.

    The run's whole-worker SIGKILLs go through :meth:`kill`, so they count as planned; a worker
    that exits on its own (a crash in the broker client during a Redis restart, say) is
    restarted all the same and counted as unplanned. Pool processes are Celery's own business:
    the worker's main process replaces them.
    """

    def __init__(self, workers: list[Any], interval: float = 0.5) -> None:
        super().__init__(name="chaos-supervisor", daemon=True)
        self.workers = workers
        self.interval = interval
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # a kill and a restart of one worker never interleave
        self.restarts = 0
        self.unplanned = 0
        self.failed_starts = 0
        self._planned: set[int] = set()

    def kill(self, worker: Any) -> None:
        """SIGKILL a whole worker; the supervisor brings it back."""
        with self.lock:
            worker.kill()
            self._planned.add(id(worker))

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            for worker in self.workers:
                with self.lock:
                    if self.stopping.is_set() or worker.alive:
                        continue
                    planned = id(worker) in self._planned
                    try:
                        worker.start(timeout=60)
                    except (RuntimeError, TimeoutError):  # exited again at once: next round
                        self.failed_starts += 1
                        logger.exception("supervisor: a worker did not come back")
                        continue
                    self._planned.discard(id(worker))
                    self.restarts += 1
                    self.unplanned += not planned
                    logger.info(
                        "supervisor: restarted a worker (%s)",
                        "planned kill" if planned else "it exited",
                    )

    def stop(self) -> None:
        """Stop supervising (before the workers are shut down, so none is brought back)."""
        self.stopping.set()
        self.join(120)


def owed_count() -> int:
    from django_connectycube.models import CubeUser

    return CubeUser.objects.owed().count()


def wait_for_quiescence(timeout: float) -> tuple[bool, float]:
    """Wait until nothing is owed for a few polls in a row (bounded by ``timeout``)."""
    from django.db import close_old_connections

    began = time.monotonic()
    quiet = 0
    while time.monotonic() - began < timeout:
        close_old_connections()
        if owed_count() == 0:
            quiet += 1
            if quiet >= 3:
                return True, time.monotonic() - began
        else:
            quiet = 0
        time.sleep(1.0)
    return False, time.monotonic() - began
