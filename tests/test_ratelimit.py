"""The shared rate limit: the transport's throttle hook, the cache-backed limiter, its settings.

"Workers" here are separate :class:`SharedRateLimit` instances sharing one cache, as separate
processes share Redis; the process-level test with Redis is in ``test_ratelimit_processes``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
import requests
import responses
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_connectycube.client import (
    ConnectyCubeClient,
    MemoryAppSessionStore,
    RateLimited,
    RetryPolicy,
)
from django_connectycube.client.transport import Transport
from django_connectycube.client_factory import build_client
from django_connectycube.conf import ConfigurationError
from django_connectycube.ratelimit import (
    MAX_PAUSE,
    SharedRateLimit,
    check_rate_limit,
    throttle_from_settings,
)
from django_connectycube.retry_checks import check_retry_settings
from tests.arrivals import Arrivals

API = "https://api.example.test"


class FakeTime:
    """A clock that moves only when someone sleeps; ``on_sleep`` runs during the first sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self.on_sleep = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        hook, self.on_sleep = self.on_sleep, None
        if hook is not None:
            hook()


def limiter(limit: int, fake: FakeTime | None = None, scope: str | None = None, **kwargs):
    timing = {"clock": fake.clock, "sleep": fake.sleep} if fake else {}
    return SharedRateLimit(limit, scope=scope or uuid.uuid4().hex, **timing, **kwargs)


def two_workers(limit: int, fake: FakeTime) -> tuple[SharedRateLimit, SharedRateLimit]:
    """Two workers' limiters on one cache and one application (a fresh one per test)."""
    scope = uuid.uuid4().hex
    return limiter(limit, fake, scope=scope), limiter(limit, fake, scope=scope)


class RecordingThrottle:
    def __init__(self) -> None:
        self.acquired = 0
        self.limited: list[float | None] = []

    def acquire(self) -> None:
        self.acquired += 1

    def rate_limited(self, retry_after: float | None) -> None:
        self.limited.append(retry_after)


# ---- the transport's hook ---------------------------------------------------------------------


@responses.activate
def test_the_throttle_is_asked_before_every_attempt_retries_included():
    responses.get(f"{API}/users/1", status=503, json={"errors": ["busy"]})
    responses.get(f"{API}/users/1", body=requests.ConnectionError("reset"))
    responses.get(f"{API}/users/1", json={"user": {"id": 1}})
    throttle = RecordingThrottle()
    transport = Transport(API, sleep=lambda s: None, throttle=throttle)
    assert transport.request("GET", "users/1").status_code == 200
    assert throttle.acquired == len(responses.calls) == 3
    assert throttle.limited == []


@responses.activate
def test_a_429_is_reported_to_the_throttle_with_its_retry_after():
    slow = {"errors": ["slow"]}
    responses.post(f"{API}/users", status=429, json=slow, headers={"Retry-After": "2"})
    responses.post(f"{API}/users", status=429, json={"errors": ["slow down"]})
    responses.post(f"{API}/users", status=201, json={"user": {"id": 1}})
    throttle = RecordingThrottle()
    transport = Transport(
        API, sleep=lambda s: None, throttle=throttle, policy=RetryPolicy(retries=3)
    )
    assert transport.request("POST", "users", json={}).status_code == 201
    assert throttle.limited == [2.0, None]
    assert throttle.acquired == 3


def test_clients_built_from_settings_share_the_limit_only_when_it_is_set(settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RATE_LIMIT": 25}
    client = build_client(app_session_store=MemoryAppSessionStore())
    throttle = client.transport.throttle
    assert isinstance(throttle, SharedRateLimit) and throttle.limit == 25
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RATE_LIMIT": None}
    client = build_client(app_session_store=MemoryAppSessionStore())
    assert client.transport.throttle is None


# ---- settings ---------------------------------------------------------------------------------


BAD = [0, -5, 2.5, "100", True, float("nan"), float("inf"), [100], {"rate": 100}]


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_bad_rate_limits_are_refused_naming_the_setting(settings, value):
    with pytest.raises(ConfigurationError, match=r'CONNECTYCUBE\["RATE_LIMIT"\] must be a whole'):
        check_rate_limit(value)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RATE_LIMIT": value}
    with pytest.raises(ConfigurationError, match="RATE_LIMIT"):
        build_client()
    errors = [m for m in check_retry_settings() if m.id == "connectycube.E002"]
    assert len(errors) == 1 and isinstance(errors[0], Error)
    assert "RATE_LIMIT" in errors[0].msg and repr(value) in errors[0].msg


@pytest.mark.parametrize(("value", "expected"), [(None, None), (1, 1), (100, 100), (50.0, 50)])
def test_good_rate_limits(value, expected):
    assert check_rate_limit(value) == expected


def test_manage_check_fails_on_a_bad_rate_limit(settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RATE_LIMIT": "fast"}
    with pytest.raises(SystemCheckError, match="RATE_LIMIT"):
        call_command("check")


def test_an_unknown_rate_limit_cache_is_refused(settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RATE_LIMIT": 10, "RATE_LIMIT_CACHE": "nope"}
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_CACHE"):
        throttle_from_settings()
    assert [m.id for m in check_retry_settings()] == ["connectycube.E002"]


# ---- the limiter, on a fake clock ------------------------------------------------------------


def test_requests_of_one_second_are_spread_over_it_and_the_next_waits():
    fake = FakeTime(1000.0)
    limit = limiter(4, fake)
    times = []
    for _ in range(9):
        limit.acquire()
        times.append(round(fake.now, 6))
    assert times == [1000.0, 1000.25, 1000.5, 1000.75, 1001.0, 1001.25, 1001.5, 1001.75, 1002.0]


def test_a_slot_already_passed_goes_at_once():
    fake = FakeTime(1000.9)
    limit = limiter(4, fake)
    for _ in range(4):
        assert limit.acquire() == 1000
    assert fake.slept == []  # every slot of second 1000 lies before 1000.9
    assert limit.acquire() == 1001


def test_a_request_held_up_past_its_second_is_counted_again_in_the_next(monkeypatch):
    fake = FakeTime(1000.9)
    limit = limiter(4, fake)
    count = limit._count

    def stalled(window: int) -> int:
        n = count(window)
        if window == 1000:
            fake.now += 0.2  # the thread lost the CPU between counting and sending
        return n

    monkeypatch.setattr(limit, "_count", stalled)
    assert limit.acquire() == 1001  # not sent in second 1001 on second 1000's count
    assert limit._cache().get(limit._key(1000)) == 1  # the stale count stays: never under
    assert limit._cache().get(limit._key(1001)) == 1


def test_a_429_holds_back_every_worker_for_its_retry_after():
    fake = FakeTime(1000.1)
    first, second = two_workers(100, fake)
    first.rate_limited(2.5)
    assert second.acquire() == 1003  # the pause ends inside second 1002: its windows are full
    assert fake.now >= 1000.1 + 2.5
    assert first.acquire() == 1003


def test_a_429_without_retry_after_pauses_one_second_and_a_huge_one_is_capped():
    fake = FakeTime(1000.0)
    first, second = two_workers(10, fake)
    first.rate_limited(None)
    assert second.acquire() == 1001
    fake.now = 2000.0
    first.rate_limited(3600)
    second.acquire()
    assert 2000 + MAX_PAUSE <= fake.now <= 2000 + MAX_PAUSE + 1


def test_a_request_waiting_for_its_slot_sees_a_429_that_came_meanwhile():
    fake = FakeTime(1000.0)
    other, waiting = two_workers(4, fake)
    other.acquire()
    other.acquire()  # waiting's next slot is the third, at 1000.5
    fake.on_sleep = lambda: other.rate_limited(2.0)  # a 429 while it waits for 1000.5
    assert waiting.acquire() >= 1002
    assert fake.now >= 1002.0


def test_no_request_waits_longer_than_its_clients_patience():
    fake = FakeTime(1000.0)
    refused, patient = two_workers(10, fake)
    refused.rate_limited(30.0)
    patient.max_wait = 5.0
    with pytest.raises(RateLimited, match="longer than 5 s") as raised:
        patient.acquire()
    assert fake.slept == []  # it says so at once, rather than after waiting for nothing
    assert 29.0 <= raised.value.retry_after <= 31.0
    patient.max_wait = 40.0
    assert patient.acquire() == 1030


def test_a_login_waits_for_the_limit_at_most_half_its_timeout(settings):
    from django_connectycube.client_factory import login_client, shared_client

    cube = {"RATE_LIMIT": 10, "SYNC_ON_LOGIN_TIMEOUT": 10.0, "MAX_RETRY_WAIT": 30.0}
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, **cube}
    assert login_client().transport.throttle.max_wait == 5.0
    assert shared_client().transport.throttle.max_wait == 30.0


def test_without_a_cache_requests_go_through_and_it_is_logged_once(settings, caplog):
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        },
    }
    limit = limiter(1, cache_alias="down")
    started = time.monotonic()
    for _ in range(5):
        limit.acquire()
    limit.rate_limited(1.0)  # remembered locally, even without the cache
    assert time.monotonic() - started < 3.0  # limited, five requests would take four seconds
    assert caplog.text.count("no cache") == 1


# ---- the limiter, threads sharing a cache ----------------------------------------------------


def test_threads_of_several_workers_never_exceed_the_limit_in_any_second():
    limit, workers, threads_each = 40, 3, 6
    scope = uuid.uuid4().hex
    stop_at = time.time() + 2.6
    admitted: list[tuple[int, float]] = []
    lock = threading.Lock()

    def run(worker: SharedRateLimit) -> None:
        while time.time() < stop_at:
            window = worker.acquire()
            with lock:
                admitted.append((window, time.time()))

    pool = [limiter(limit, scope=scope) for _ in range(workers)]
    threads = [threading.Thread(target=run, args=(w,)) for w in pool for _ in range(threads_each)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_window = Counter(window for window, _ in admitted)
    assert max(per_window.values()) <= limit
    per_second = Counter(int(t) for _, t in admitted)  # by the clock, as the server sees it
    assert max(per_second.values()) <= limit + 2  # (+ what a thread switch delays the record)
    full = [n for window, n in per_window.items() if min(per_window) < window < max(per_window)]
    assert full and min(full) >= limit * 0.6  # 18 threads keep every whole second busy
    # Spread over each whole second (the first one starts part-way, its past slots go at once):
    # either half of it admits about half of the limit.
    inner = range(min(per_window) + 1, max(per_window))
    halves = Counter((w, t - w < 0.5) for w, t in admitted if w in inner and t - w < 1)
    assert max(halves.values()) <= limit // 2 + 3


def test_a_429_pauses_clients_of_other_workers_against_the_emulator(connectycube_emulator):
    """Two clients (two workers' limiters on one cache) keep GET /users/v2 busy; one 429 with
    Retry-After 1 pauses both: the emulator sees no request for the paused span."""
    scope = uuid.uuid4().hex
    clients = [build_client(throttle=limiter(200, scope=scope)) for _ in range(2)]
    for client in clients:
        client.search_users(login="nobody")  # sessions first
    connectycube_emulator.set_fault("GET /users/v2", sequence=[429], retry_after=1.0)
    stop = threading.Event()

    def hammer(client: ConnectyCubeClient) -> None:
        while not stop.is_set():
            client.search_users(login="nobody")

    threads = [threading.Thread(target=hammer, args=(c,)) for c in clients for _ in range(2)]
    with Arrivals(connectycube_emulator.request_count, every=0.005) as seen:
        for thread in threads:
            thread.start()
        time.sleep(2.5)
        stop.set()
        for thread in threads:
            thread.join()
    counts = [n for _, _, n in seen.samples]
    assert counts[-1] > counts[0] + 20  # requests flowed before and after the pause
    still = seen.longest_still()
    assert still >= 0.8, f"no shared pause: the longest span without a request is {still:.2f} s"


# ---- processes sharing Redis ------------------------------------------------------------------

CHILD = """
import json, sys, threading, time
import django
from django.conf import settings
url, prefix, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
backend = "django.core.cache.backends.redis.RedisCache"
settings.configure(CACHES={"default": {"BACKEND": backend, "LOCATION": url, "KEY_PREFIX": prefix}})
django.setup()
from django_connectycube.ratelimit import SharedRateLimit
limiter, windows = SharedRateLimit(limit, scope="processes"), []
print("ready", flush=True)
stop = float(sys.stdin.readline())  # every process starts together
def run():
    while time.time() < stop:
        windows.append(limiter.acquire())
threads = [threading.Thread(target=run) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(windows))
"""


@pytest.mark.integration
def test_worker_processes_sharing_redis_never_exceed_the_limit_in_any_second(redis_url):
    import json
    import subprocess
    import sys

    limit, prefix = 30, uuid.uuid4().hex
    command = [sys.executable, "-c", CHILD, redis_url, prefix, str(limit)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    children = [subprocess.Popen(command, **pipes) for _ in range(4)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    stop_at = time.time() + 3.5
    for child in children:
        child.stdin.write(f"{stop_at}\n")
        child.stdin.flush()
    per_window: Counter[int] = Counter()
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        per_window.update(json.loads(out))
    assert max(per_window.values()) <= limit
    inner = [n for w, n in per_window.items() if min(per_window) < w < max(per_window)]
    assert inner and min(inner) >= limit * 0.6, per_window  # 12 threads in 4 processes: busy
