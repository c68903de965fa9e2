"""The chaos tool itself: production retry defaults, its own Redis, its request bound.

Issue: the chaos run raised the attempt cap to 1,000 (production: 8), so "0 dead letters" held
by construction; and it restarted whatever Redis listened on its URL's port on localhost.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import threading

import pytest

from benchmarks import chaos
from benchmarks.chaos_faults import compressed, request_bound
from benchmarks.chaos_services import OwnRedis, Supervisor
from django_connectycube.conf import DEFAULTS
from tests.conftest import unavailable

#: The run's settings that are not durations: where ConnectyCube, the queue and the shared breaker
#: are, the test model's avatar field, and the mapping callable the run makes fail.
RUN_WIRING = {
    "API_URL",
    "APPLICATION_ID",
    "AUTH_KEY",
    "AUTH_SECRET",
    "AVATAR_FIELD",
    "TASK_QUEUE",
    "PASSWORD_SECRETS",
    "CACHE",
    "USER_FIELDS",
}


def chaos_settings(monkeypatch, scale: str):
    monkeypatch.setenv("CHAOS_TIME_SCALE", scale)
    monkeypatch.setenv("CHAOS_CACHE_URL", "redis://127.0.0.1:1/1")
    # What tests.worker.Worker puts in a worker's environment must not leak into the run.
    monkeypatch.setenv("CONNECTYCUBE_LEASE_SECONDS", "4")
    monkeypatch.setenv("CONNECTYCUBE_RETRIES", "1")
    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", "5")
    sys.modules.pop("benchmarks.chaos_settings", None)
    return importlib.import_module("benchmarks.chaos_settings")


def test_the_run_keeps_production_settings_with_one_time_scale(monkeypatch):
    # Issue: the run had its own sweep (8 s), lease (20 s), visibility timeout (10 s), client
    # retries and broker options next to the compressed failure policy.
    args = chaos.parse_args(["--users", "150", "--kills", "3"])
    assert not hasattr(args, "max_attempts")
    for dropped in ("sweep_after", "lease_seconds", "visibility_timeout", "read_timeout"):
        assert not hasattr(args, dropped)
    example = importlib.import_module("example_project.settings")
    try:
        settings = chaos_settings(monkeypatch, "15")
        cube = settings.CONNECTYCUBE
        # Every setting is production's or production's duration scaled, but for the wiring.
        assert set(cube) - set(compressed(15)) == RUN_WIRING
        assert all(cube[name] == value for name, value in compressed(15).items())
        assert cube["SWEEP_AFTER"] == DEFAULTS["SWEEP_AFTER"] / 15
        assert cube["LEASE_SECONDS"] == DEFAULTS["LEASE_SECONDS"] / 15
        assert cube["TIMEOUT"] == tuple(t / 15 for t in DEFAULTS["TIMEOUT"])
        assert "RETRIES" not in cube  # production's count of client retries
        visibility = example.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
        scaled = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        assert scaled == {"visibility_timeout": visibility / 15}
        for option in (
            "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP",
            "CELERY_BROKER_CONNECTION_MAX_RETRIES",
            "CELERY_TASK_PUBLISH_RETRY_POLICY",
            "CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS",
        ):
            assert getattr(settings, option) == getattr(example, option), option
        assert example.CELERY_BROKER_CONNECTION_MAX_RETRIES is None  # reconnect for ever
        assert "CIRCUIT_BREAKER_THRESHOLD" not in compressed(15)  # counts are not time
    finally:
        sys.modules.pop("benchmarks.chaos_settings", None)


def test_a_scale_that_would_squeeze_a_request_under_a_second_is_refused():
    with pytest.raises(SystemExit):
        chaos.parse_args(["--time-scale", "300"])


class FakeWorker:
    """A worker whose process the test ends; ``start`` brings it back, as Worker.start does."""

    def __init__(self) -> None:
        self.alive = True
        self.starts = 0
        self.started = threading.Event()

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        self.alive = True
        self.started.set()

    def kill(self) -> None:
        self.alive = False


def test_the_supervisor_restarts_a_worker_that_exits_and_counts_it():
    # Issue: a worker died in a Redis restart (kombu's "file descriptor is None") and nobody
    # restarted it, as systemd or Kubernetes would have.
    crashed, killed, steady = FakeWorker(), FakeWorker(), FakeWorker()
    supervisor = Supervisor([crashed, killed, steady], interval=0.01)
    supervisor.start()
    try:
        crashed.alive = False  # it exited on its own
        assert crashed.started.wait(30)
        supervisor.kill(killed)  # the run's SIGKILL: it still kills, and the supervisor sees it
        assert killed.started.wait(30)
    finally:
        supervisor.stop()
    assert (crashed.starts, killed.starts, steady.starts) == (1, 1, 0)
    assert (supervisor.restarts, supervisor.unplanned) == (2, 1)
    steady.alive = False  # stopped: a worker shut down at the end stays down
    assert not steady.started.is_set() and steady.starts == 0


def test_it_takes_no_redis_url_and_never_a_scale_below_production():
    with pytest.raises(SystemExit):
        chaos.parse_args(["--redis-url", "redis://127.0.0.1:6379/5"])
    with pytest.raises(SystemExit):
        chaos.parse_args(["--time-scale", "0.5"])


def test_its_redis_is_its_own(tmp_path):
    if shutil.which("redis-server") is None:
        unavailable("needs redis-server on PATH to start the chaos run's own Redis")
    redis = OwnRedis(tmp_path / "redis")
    assert redis.port != 6379 and not redis.ping()
    try:
        redis.start()
        assert redis.ping() and redis.url(1) == f"redis://127.0.0.1:{redis.port}/1"
        first = redis.process.pid
        redis.restart()
        assert redis.ping() and redis.process.pid != first and redis.restarts == 1
        redis.stop()
        assert not redis.ping()
    finally:
        redis.close()
    assert redis.process is None


def test_the_outage_bound_counts_probes_at_a_doubling_cooldown():
    # 5 failures + 8 pushes in flight before the circuit opens; then probes at 1, 2, 4, 8, 8 s
    # over a 20-second outage; each push or probe: one request, one retry, one session.
    bound = request_bound(
        seconds=20, processes=8, retries=1, threshold=5, cooldown=1, cooldown_max=8
    )
    assert bound == (5 + 8 + 5 + 1) * 3
