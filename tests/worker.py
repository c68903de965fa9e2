"""A real Celery worker in a subprocess, for tests that must not rest on eager mode.

The worker shares the test database (PostgreSQL; the tests using it are transactional so it
sees committed rows), consumes a queue private to this test run on Redis, and talks to the
emulator over HTTP like production talks to ConnectyCube.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def database_url_of(settings_dict: dict[str, Any]) -> str:
    """A ``postgres://`` URL for the database Django is connected to (the test database)."""
    user = settings_dict.get("USER") or "postgres"
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


class Worker:
    """``celery worker`` (prefork) that can be started, killed with SIGKILL and restarted."""

    def __init__(
        self,
        *,
        broker_url: str,
        database_url: str,
        connectycube: dict[str, Any],
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
        log_path: Path | None = None,
        queue: str | None = None,
        loglevel: str = "INFO",
    ) -> None:
        # Several workers may share one queue (the chaos run); each still needs its own node name.
        self.queue = queue or f"cube-test-{uuid.uuid4().hex[:10]}"
        self.node = f"{self.queue}-{uuid.uuid4().hex[:6]}"
        self.loglevel = loglevel
        self.concurrency = concurrency
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.node}.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_VISIBILITY_TIMEOUT": "5",
            "CONNECTYCUBE_API_URL": connectycube["API_URL"],
            "CONNECTYCUBE_APPLICATION_ID": str(connectycube["APPLICATION_ID"]),
            "CONNECTYCUBE_AUTH_KEY": connectycube["AUTH_KEY"],
            "CONNECTYCUBE_AUTH_SECRET": connectycube["AUTH_SECRET"],
            "CONNECTYCUBE_TASK_QUEUE": self.queue,
            "CONNECTYCUBE_LEASE_SECONDS": "4",
            "CONNECTYCUBE_TEST_BACKOFF_BASE": "0.2",
            "CONNECTYCUBE_RETRY_HORIZON": "144",  # the longest wait between retries: 2 s
            "CONNECTYCUBE_RETRIES": "1",
            **(extra_env or {}),
        }
        self.broker_url = broker_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Worker:
        """Start the worker and wait until it logs ``ready.`` (a restart appends to the log)."""
        ready_before = self.log().count("ready.")
        log = open(self.log_path, "ab")  # noqa: SIM115  (closed with the process)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests",
                "worker",
                "--pool=prefork",
                f"--concurrency={self.concurrency}",
                "-Q",
                self.queue,
                f"--loglevel={self.loglevel}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{self.node}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_for_log("ready.", timeout, seen=ready_before)
        return self

    def _wait_for_log(self, marker: str, timeout: float, seen: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if self.log().count(marker) > seen:
                return
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def children(self) -> list[int]:
        """Pids of the pool processes (the ones that run tasks)."""
        if self.process is None:
            return []
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    def kill_children(self) -> int:
        """SIGKILL every pool process mid-work, as an OOM killer would; returns how many."""
        pids = self.children()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    @property
    def alive(self) -> bool:
        """Whether the main worker process is running."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), escalating to SIGKILL after 15 s."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()
        self.process = None


def use_broker(app: Any, url: str) -> None:
    """Point a Celery app (this process's) at another broker.

    The write and read URLs are what Celery connects with; ``broker_url`` itself would lose to
    a ``CELERY_BROKER_URL`` environment variable. The app's pools are only forgotten, not
    closed: kombu keeps one pool per broker URL for the whole process, and hands it out again.
    """
    app.conf.broker_write_url = app.conf.broker_read_url = url
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or raise ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s (last value: {last!r})")
