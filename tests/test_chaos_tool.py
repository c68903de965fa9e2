"""The chaos tool itself: production retry defaults, its own Redis, its request bound.

Issue: the chaos run raised the attempt cap to 1,000 (production: 8), so "0 dead letters" held
by construction; and it restarted whatever Redis listened on its URL's port on localhost.
"""

from __future__ import annotations

import importlib
import shutil
import sys

import pytest

from benchmarks import chaos
from benchmarks.chaos_faults import compressed, request_bound
from benchmarks.chaos_services import OwnRedis
from django_connectycube.conf import DEFAULTS
from tests.conftest import unavailable


def test_the_run_keeps_the_production_retry_defaults_only_compressed(monkeypatch):
    args = chaos.parse_args(["--users", "150", "--kills", "3"])
    assert not hasattr(args, "max_attempts")
    monkeypatch.setenv("CHAOS_TIME_SCALE", "300")
    monkeypatch.setenv("CHAOS_CACHE_URL", "redis://127.0.0.1:1/1")
    sys.modules.pop("benchmarks.chaos_settings", None)
    settings = importlib.import_module("benchmarks.chaos_settings")
    try:
        policy = settings.CONNECTYCUBE
        assert policy["TASK_MAX_ATTEMPTS"] is None
        assert policy["RETRY_HORIZON"] == DEFAULTS["RETRY_HORIZON"] / 300
        assert policy["TASK_BACKOFF_MAX"] == DEFAULTS["TASK_BACKOFF_MAX"] / 300
        assert "CIRCUIT_BREAKER_THRESHOLD" not in compressed(300)  # counts are not time
    finally:
        sys.modules.pop("benchmarks.chaos_settings", None)


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
