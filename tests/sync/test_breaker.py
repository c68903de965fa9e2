"""The circuit breaker: opens at the threshold, lets one probe through per cool-down, doubles
the cool-down when the probe fails, closes when ConnectyCube answers, and never blocks a push
because its cache is down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from django_connectycube.errors import CircuitOpen
from django_connectycube.sync import breaker


@pytest.fixture(autouse=True)
def fresh(settings, monkeypatch):
    cache.clear()
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "CIRCUIT_BREAKER_THRESHOLD": 3,
        "CIRCUIT_BREAKER_COOLDOWN": 30,
    }
    monkeypatch.setattr(breaker, "COOLDOWN_GROWTH", 3)  # the longest pause: 90 s
    offset = [timedelta()]
    real = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real() + offset[0])
    yield lambda seconds: offset.__setitem__(0, offset[0] + timedelta(seconds=seconds))
    cache.clear()


def test_it_opens_at_the_threshold_and_probes_once_per_cooldown(fresh):
    advance = fresh
    for _ in range(2):
        breaker.record_failure()
        assert breaker.probe_or_wait() is False  # still closed
    breaker.record_failure()
    with pytest.raises(CircuitOpen) as info:
        breaker.probe_or_wait()
    assert 29 < info.value.retry_in <= 30
    assert breaker.is_open() is not None
    advance(31)
    assert breaker.is_open() is None and breaker.half_open()
    assert breaker.probe_or_wait() is True  # this push is the probe
    with pytest.raises(CircuitOpen):
        breaker.probe_or_wait()  # only one
    breaker.record_failure(probe=True)
    with pytest.raises(CircuitOpen) as info:
        breaker.probe_or_wait()
    assert 59 < info.value.retry_in <= 60  # twice as long
    advance(61)
    assert breaker.probe_or_wait() is True
    breaker.record_failure(probe=True)
    advance(91)
    assert breaker.probe_or_wait() is True
    breaker.record_failure(probe=True)
    with pytest.raises(CircuitOpen) as info:
        breaker.probe_or_wait()
    assert 89 < info.value.retry_in <= 90  # capped
    advance(91)
    assert breaker.probe_or_wait() is True
    breaker.record_success()
    assert breaker.probe_or_wait() is False and breaker.is_open() is None


def test_failures_of_pushes_in_flight_do_not_extend_it(fresh):
    for _ in range(3):
        breaker.record_failure()
    before = breaker.is_open()
    for _ in range(10):
        breaker.record_failure()  # pushes that started before it opened
    assert breaker.is_open() == pytest.approx(before, abs=1)


def test_a_probe_with_nothing_to_send_hands_the_probe_on(fresh):
    for _ in range(3):
        breaker.record_failure()
    fresh(31)
    assert breaker.probe_or_wait() is True
    breaker.release_probe()
    assert breaker.probe_or_wait() is True


def test_a_success_forgets_earlier_failures(fresh):
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.probe_or_wait() is False


def test_threshold_zero_turns_it_off(fresh, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "CIRCUIT_BREAKER_THRESHOLD": 0}
    for _ in range(10):
        breaker.record_failure()
    assert breaker.probe_or_wait() is False and breaker.is_open() is None


def test_a_broken_cache_never_blocks_a_push(fresh, monkeypatch, caplog):
    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise ConnectionError("cache down")

            return fail

    monkeypatch.setattr(breaker, "_cache", lambda: Down())
    for _ in range(5):
        breaker.record_failure()
    assert breaker.probe_or_wait() is False
    assert breaker.is_open() is None
    assert "treated as closed" in caplog.text
