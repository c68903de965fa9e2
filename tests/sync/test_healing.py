"""Healing after an outage, at the production defaults, on a simulated clock.

Issue: after a ten-minute outage ConnectyCube waited 7-12 minutes for the backlog once it was
back: the breaker's pause had grown to 480-600 s, a probe went out only on a beat tick, and the
backlog only on the tick after that.

Nothing sleeps here: Django's clock moves a second per step, Celery is a list of messages with
their due times (a countdown is held until the clock reaches it), a worker runs every message
that is due, and beat runs the sweep once a simulated minute.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Max, Q
from django.utils import timezone

from django_connectycube.models import CubeUser
from django_connectycube.sync import breaker, enqueue, tasks
from django_connectycube.sync import push as sync
from tests.messages import tasks_in

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()

MINUTE = 60.0


class _Retry(Exception):
    pass


class Simulation:
    """Django's clock, a broker that honours countdowns, a worker and beat."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = timedelta()
        self.elapsed = 0
        self.beat = True
        self.start = timezone.now().timestamp()
        self.queue: list[tuple[float, str, Any]] = []
        self.probes: list[tuple[float, float]] = []  # (when, the pause's end it followed)
        real_now = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real_now() + self.offset)
        monkeypatch.setattr(
            "celery.app.task.Task.apply_async",
            lambda task, args=None, kwargs=None, **options: self.publish(task, args, **options),
        )
        real_probe = breaker.probe_or_wait

        def probe_or_wait() -> bool:
            until = breaker._cache().get(breaker.OPEN_UNTIL)
            probe = real_probe()
            if probe:
                self.probes.append((self.elapsed, float(until)))
            return probe

        monkeypatch.setattr(breaker, "probe_or_wait", probe_or_wait)

    def publish(self, task: Any, args: Any, **options: Any) -> None:
        due = self.elapsed + float(options.get("countdown") or 0)
        if task.name == enqueue.sweep_dirty.name:
            self.queue.append((due, "sweep_dirty", None))
            return
        self.queue.extend((due, name, arg) for name, arg in tasks_in(task.name, args))

    def _task(self, name: str, arg: Any) -> Any:
        sim = self

        class Task:
            class request:
                is_eager = False
                retries = 0

            def retry(self, countdown: float | None = None, exc: Any = None) -> _Retry:
                sim.queue.append((sim.elapsed + float(countdown or 0), name, arg))
                return _Retry()

        return Task()

    def _run(self, name: str, arg: Any) -> None:
        if name == "sweep_dirty":
            enqueue.sweep()
            return
        if name == "push_user":
            func, link_filter = sync.push_user, Q(user_id=arg)
        else:
            func, link_filter = sync.delete_remote_user, Q(pk=arg)
        with contextlib.suppress(_Retry):
            tasks._run(self._task(name, arg), func, arg, link_filter)

    def step(self) -> None:
        """One simulated second: the worker runs what is due; beat sweeps on the minute."""
        self.offset += timedelta(seconds=1)
        self.elapsed += 1
        if self.beat and self.elapsed % MINUTE == 0:
            self.queue.append((self.elapsed, "sweep_dirty", None))  # beat's tick
        while due := [m for m in self.queue if m[0] <= self.elapsed]:
            for message in due:
                self.queue.remove(message)
                self._run(message[1], message[2])

    def run(self, seconds: float) -> None:
        for _ in range(int(seconds)):
            self.step()


@pytest.fixture
def sim(connectycube_emulator: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Simulation:
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0, "TIMEOUT": (2.0, 2.0)}
    from django.core.cache import cache

    cache.clear()
    return Simulation(monkeypatch)


def test_owed_changes_reach_connectycube_within_two_minutes_of_its_recovery(
    connectycube_emulator, sim
):
    cube = connectycube_emulator
    cube.set_fault("*", error_rate=1.0, statuses=[503])
    users = [User.objects.create(username=f"heal{i}", first_name="A") for i in range(20)]
    sim.run(10 * MINUTE)
    assert CubeUser.objects.filter(state="pending").count() == len(users)
    # The worst moment for ConnectyCube to come back: a probe has just failed.
    probes = len(sim.probes)
    for _ in range(int(10 * MINUTE)):
        if len(sim.probes) > probes:
            break
        sim.step()
    assert len(sim.probes) > probes, f"no probe in the ten minutes after {sim.probes}"
    outage_requests = cube.request_count()
    pauses = [until for _, until in sim.probes]
    assert len(set(pauses)) == len(pauses), "at most one probe per pause of the breaker"
    assert len(sim.probes) <= 10 * MINUTE / 30, "no more than one probe per cool-down"
    threshold = 5
    assert outage_requests <= 2 * (threshold + len(sim.probes)), "no hammering meanwhile"

    cube.clear_faults()
    recovered = timezone.now()
    for _ in range(int(3 * MINUTE)):
        sim.step()
        if not CubeUser.objects.exclude(state="synced").exists():
            break
    assert CubeUser.objects.exclude(state="synced").count() == 0
    last = CubeUser.objects.aggregate(last=Max("last_synced_at"))["last"]
    healed = (last - recovered).total_seconds()
    assert healed <= 2 * MINUTE, f"the backlog reached ConnectyCube {healed:.0f} s after recovery"
    assert len(cube.users) == len(users)


def test_probes_go_out_at_the_end_of_each_pause_without_beat(connectycube_emulator, sim):
    # The probe is not tied to beat's tick: with beat stopped once the circuit opened, the
    # scheduled sweeps alone probe, and release the backlog once ConnectyCube answers.
    cube = connectycube_emulator
    cube.set_fault("*", error_rate=1.0, statuses=[503])
    User.objects.create(username="nobeat", first_name="A")
    sim.run(MINUTE)  # beat's first tick hands the circuit to the scheduled sweeps
    sim.beat = False
    sim.run(5 * MINUTE)
    assert len(sim.probes) >= 3
    for when, until in sim.probes[1:]:
        assert abs(when - (until - sim.start)) <= 3, "each probe went out when its pause ended"
    cube.clear_faults()
    sim.run(2 * MINUTE)
    assert CubeUser.objects.get().state == "synced"
