"""The login guard: atomic reservation, progressive delays, per-IP limits and known devices.

The parallel test sends wrong guesses from many threads at once through the real view, with
the counters in a cache every thread shares (Django's local-memory cache, and Redis when it is
reachable), so a check-then-count race shows up as more password checks than the limit allows.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client, RequestFactory

from django_connectycube.api import lockout
from django_connectycube.api.client_ip import client_ip

User = get_user_model()
LOGIN = "/api/connectycube/login/"
# Every attempt looks its account up, as the authentication backend does.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker", "clean_cache")]


class CountingBackend:
    """An authentication backend that refuses everyone slowly and counts the checks."""

    lock = threading.Lock()
    checks = 0
    delay = 0.0

    def authenticate(self, request, username=None, password=None, **kwargs):
        with CountingBackend.lock:
            CountingBackend.checks += 1
        time.sleep(CountingBackend.delay)
        return None

    def get_user(self, user_id):
        return None


@pytest.fixture
def counting_backend(settings):
    settings.AUTHENTICATION_BACKENDS = ["tests.api.test_api_lockout.CountingBackend"]
    CountingBackend.checks = 0
    CountingBackend.delay = 0.2  # wide enough that every thread is inside the view at once
    yield CountingBackend
    CountingBackend.delay = 0.0


def guess(client=None, username="alice", password="wrong", **extra):  # noqa: S107
    return (client or Client(**extra)).post(LOGIN, {"username": username, "password": password})


def guess_in_parallel(n: int) -> Counter[int]:
    barrier = threading.Barrier(n)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def attempt() -> None:
        client = Client()
        barrier.wait()
        status = guess(client).status_code
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.fixture(params=["locmem", pytest.param("redis", marks=pytest.mark.integration)])
def shared_cache(request, settings):
    """The counters' cache: local memory, or a Redis database with a key prefix of its own."""
    if request.param == "locmem":
        yield
        return
    url = request.getfixturevalue("redis_url")
    alias = "lockout-test"
    settings.CACHES = {
        **settings.CACHES,
        alias: {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"lockout-test-{uuid.uuid4().hex}",  # never clear: the db is shared
        },
    }
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "CACHE": alias}
    yield
    caches[alias].close()


def test_parallel_wrong_guesses_are_checked_no_more_often_than_the_limit(
    counting_backend, shared_cache, settings
):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "LOGIN_FAILURE_LIMIT": 5}
    statuses = guess_in_parallel(40)
    assert counting_backend.checks <= 5
    assert statuses[401] == counting_backend.checks >= 1
    assert statuses[429] == 40 - counting_backend.checks


def test_refused_attempts_do_not_renew_the_delay(counting_backend, monkeypatch):
    monkeypatch.setattr(lockout, "DELAY", 1)
    counting_backend.delay = 0
    for _ in range(5):
        assert guess().status_code == 401
    for _ in range(20):  # an attacker hammering while the account waits
        refused = guess()
        assert refused.status_code == 429
        assert refused.json()["code"] == "login_locked"
        assert refused["Retry-After"] == "1"
    assert counting_backend.checks == 5
    time.sleep(1.05)
    assert guess().status_code == 401  # the delay ended; the next one is longer
    assert guess()["Retry-After"] == "2"


def test_the_delay_doubles_up_to_its_cap(monkeypatch):
    monkeypatch.setattr(lockout, "DELAY", 3)
    monkeypatch.setattr(lockout, "MAX_DELAY", 20)
    delays = [lockout.delay_after(n) for n in range(6)]
    assert delays == [3, 6, 12, 20, 20, 20]
    assert lockout.delay_after(10**6) == 20


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    return connectycube_emulator


def make_user(username="alice", password="right-password"):  # noqa: S107
    return User.objects.create_user(username=username, password=password)


def test_a_known_device_logs_in_while_strangers_are_delayed(cube):
    make_user()
    victim = Client()
    assert guess(victim, password="right-password").status_code == 200
    assert lockout.DEVICE_COOKIE in victim.cookies
    for _ in range(8):  # an attacker somewhere else
        guess()
    assert guess(password="right-password").status_code == 429  # a stranger waits
    response = guess(victim, password="right-password")
    assert response.status_code == 200, response.content
    assert guess(victim, password="right-password").status_code == 200


def test_a_device_cookie_counts_only_for_its_own_account(cube):
    make_user()
    make_user("bob", "bob-password")
    device = Client()
    assert guess(device, password="right-password").status_code == 200
    for _ in range(6):
        guess(username="bob")
    assert guess(device, username="bob", password="bob-password").status_code == 429


def test_a_known_device_guessing_wrong_loses_its_privilege(cube):
    make_user()
    device = Client()
    assert guess(device, password="right-password").status_code == 200
    answers = [guess(device).status_code for _ in range(11)]
    assert answers[:10] == [401] * 10  # five on the device's own count, five on the account's
    assert answers[10] == 429


def test_a_forged_device_cookie_is_ignored(cube):
    make_user()
    for _ in range(6):
        guess()
    forger = Client()
    forger.cookies[lockout.DEVICE_COOKIE] = "alice:forged:signature"
    assert guess(forger, password="right-password").status_code == 429


# ---- client address ------------------------------------------------------------------------


def request_from(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post(LOGIN, **extra)


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "203.0.113.5", "198.51.100.7", "203.0.113.5"),  # no proxy trusted: header ignored
        (1, "10.0.0.1", "198.51.100.7", "198.51.100.7"),
        (1, "10.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # spoofed left part ignored
        (2, "10.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (2, "10.0.0.1", "198.51.100.7", "198.51.100.7"),  # fewer hops than proxies
        (1, "10.0.0.1", None, "10.0.0.1"),  # header missing: the proxy itself
        (1, "10.0.0.1", "not-an-address", "10.0.0.1"),
        (0, "2001:db8:1:2:3:4:5:6", None, "2001:db8:1:2::/64"),  # IPv6: one bucket per /64
    ],
)
def test_client_ip_trusts_the_configured_number_of_proxies(
    settings, proxies, remote, forwarded, expected
):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": proxies}
    assert client_ip(request_from(remote, forwarded)) == expected


def test_behind_a_proxy_each_client_has_its_own_ip_limit(counting_backend, settings):
    counting_backend.delay = 0
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "LOGIN_FAILURE_IP_LIMIT": 3}
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for name in ("a1", "a2", "a3"):
        assert guess(username=name, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy).status_code == 401
    assert guess(username="a4", HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy).status_code == 429
    other = guess(username="a4", HTTP_X_FORWARDED_FOR="198.51.100.8", **proxy)
    assert other.status_code == 401


class BrokenBackend(CountingBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        super().authenticate(request, username, password, **kwargs)
        raise RuntimeError("the user database is down")


def test_an_attempt_that_could_not_be_checked_counts_for_nothing(counting_backend, settings):
    counting_backend.delay = 0
    for _ in range(4):
        assert guess().status_code == 401
    settings.AUTHENTICATION_BACKENDS = ["tests.api.test_api_lockout.BrokenBackend"]
    broken = Client(raise_request_exception=False)
    assert guess(broken).status_code == 500  # won the gate, then failed to check
    settings.AUTHENTICATION_BACKENDS = ["tests.api.test_api_lockout.CountingBackend"]
    assert guess().status_code == 401  # no delay was left behind by the broken attempt
    assert guess().status_code == 429
