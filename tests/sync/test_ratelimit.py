"""The shared rate limit: the transport's throttle hook, the cache-backed limiter, its settings.

"Workers" here are separate :class:`SharedRateLimit` instances sharing one cache, as separate
processes share Redis; the process-level test with Redis is in ``test_ratelimit_processes``.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
import requests
import responses
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_connectycube.checks.retry import check_retry_settings
from django_connectycube.checks.security import check_security_settings
from django_connectycube.client import (
    MemoryAppSessionStore,
    RateLimited,
    RetryPolicy,
)
from django_connectycube.client.transport import Transport
from django_connectycube.conf import ConfigurationError
from django_connectycube.sync.connection import build_client
from django_connectycube.sync.ratelimit import (
    MAX_PAUSE,
    SharedRateLimit,
    check_rate_limit,
    throttle_from_settings,
)

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
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RATE_LIMIT": 10, "CACHE": "nope"}
    with pytest.raises(ConfigurationError, match=r'CONNECTYCUBE\["CACHE"\]'):
        throttle_from_settings()
    assert [m.id for m in check_security_settings()] == ["connectycube.E002"]


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
    from django_connectycube.sync.connection import login_client, shared_client

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
    fake = FakeTime()
    limit = limiter(1, fake, cache_alias="down")
    for _ in range(5):
        limit.acquire()
    assert fake.slept == []  # limited, five requests would wait four seconds
    limit.rate_limited(1.0)  # remembered locally, even without the cache
    limit.acquire()
    assert fake.slept == [1.0]
    assert caplog.text.count("no cache") == 1


# ---- the limiter, threads sharing a cache ----------------------------------------------------


def test_threads_of_several_workers_never_exceed_the_limit_in_any_second():
    # Each sender has a clock of its own that moves only while it waits (its requests take no
    # time), so what the cache admits per second does not depend on how the threads are
    # scheduled: 18 senders race on one counter per second, and the figures are exact.
    limit, senders, each = 40, 18, 30
    scope = uuid.uuid4().hex
    admitted: list[tuple[int, float]] = []
    lock = threading.Lock()

    def run() -> None:
        fake = FakeTime()
        worker = limiter(limit, fake, scope=scope)
        for _ in range(each):
            window = worker.acquire()
            with lock:
                admitted.append((window, fake.now))

    threads = [threading.Thread(target=run) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(admitted) == senders * each
    per_window = Counter(window for window, _ in admitted)
    assert all(int(t) == window for window, t in admitted)  # counted in the second it went
    # Never more than the limit in a second, and no second left short while senders wait.
    windows = sorted(per_window)
    assert windows == list(range(1000, 1000 + len(windows)))
    assert [per_window[w] for w in windows[:-1]] == [limit] * (len(windows) - 1)
    assert per_window[windows[-1]] == senders * each - limit * (len(windows) - 1)
    # Spread over each second: the n-th request of a second goes at (n - 1) / limit into it.
    for window in windows:
        offsets = sorted(t - window for w, t in admitted if w == window)
        assert offsets == pytest.approx([n / limit for n in range(len(offsets))])


def test_a_429_pauses_the_client_of_another_worker_against_the_emulator(connectycube_emulator):
    """One worker's 429 with Retry-After 1 holds another worker's client back for that second
    before its next request reaches the emulator (a limiter each, on one cache)."""
    scope = uuid.uuid4().hex
    clocks = [FakeTime(), FakeTime()]
    first, second = (
        build_client(throttle=limiter(200, clock, scope=scope), retries=0) for clock in clocks
    )
    for client in (first, second):
        client.search_users(login="nobody")  # sessions first
    connectycube_emulator.set_fault("GET /users/v2", sequence=[429], retry_after=1.0)
    with pytest.raises(RateLimited):
        first.search_users(login="nobody")
    before = connectycube_emulator.request_count()
    clocks[1].now, clocks[1].slept = clocks[0].now, []
    seen_while_held: list[int] = []
    clocks[1].on_sleep = lambda: seen_while_held.append(connectycube_emulator.request_count())
    second.search_users(login="nobody")
    assert clocks[1].slept[0] == pytest.approx(1.0)  # the pause, then its own slot
    assert seen_while_held == [before]  # held back before its request went out
    assert connectycube_emulator.request_count() == before + 1


# ---- processes sharing Redis ------------------------------------------------------------------

CHILD = """
import json, sys, threading
import django
from django.conf import settings
url, prefix, limit, each = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
backend = "django.core.cache.backends.redis.RedisCache"
settings.configure(CACHES={"default": {"BACKEND": backend, "LOCATION": url, "KEY_PREFIX": prefix}})
django.setup()
from django_connectycube.sync.ratelimit import SharedRateLimit
limiter, windows = SharedRateLimit(limit, scope="processes"), []
print("ready", flush=True)
sys.stdin.readline()  # every process starts together
def run():
    for _ in range(each):
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

    # A count of requests, not a span of time: what is admitted does not depend on how fast
    # the processes run, only on the shared counter.
    limit, each, prefix = 30, 10, uuid.uuid4().hex
    command = [sys.executable, "-c", CHILD, redis_url, prefix, str(limit), str(each)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    children = [subprocess.Popen(command, **pipes) for _ in range(4)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    per_window: Counter[int] = Counter()
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        per_window.update(json.loads(out))
    assert sum(per_window.values()) == 4 * 3 * each  # 12 threads in 4 processes
    assert max(per_window.values()) <= limit, per_window
