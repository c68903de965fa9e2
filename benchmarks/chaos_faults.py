"""What a chaos run does to ConnectyCube and to the app, beyond killing workers and Redis.

* :class:`FaultTally` counts every fault the emulator injects and every token it issues.
* :class:`Outage`: ConnectyCube down (every request a 5xx or a dropped connection) for longer
  than the old retry policy's whole life, with the requests that reach it counted, so the run
  can hold the request rate during an outage to a stated bound.
* :class:`MalformedSuccess` (from the test helpers): answers to creates and updates that were
  carried out but whose body is garbage.
* :func:`mapped_fields`: the project's mapping callable, raising for some users while a flag
  file exists (workers are separate processes; a file is what they all see).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from django_connectycube.emulator import EmulatorServer
from django_connectycube.sync.mapping import default_user_fields, reads

__all__ = [
    "FaultTally",
    "MappingFault",
    "Outage",
    "compressed",
    "mapped_fields",
    "request_bound",
    "visibility_timeout",
]

#: Every duration among the production defaults: the failure policy's, the queue's (the sweep,
#: the lease) and the client's (timeouts, the longest Retry-After it sleeps through). A run
#: divides each by its ``--time-scale``; nothing else differs from production.
SCALED = (
    "RETRY_HORIZON",
    "CIRCUIT_BREAKER_COOLDOWN",
    "SWEEP_AFTER",
    "LEASE_SECONDS",
    "TIMEOUT",
    "MAX_RETRY_WAIT",
)


def compressed(scale: float) -> dict[str, Any]:
    """The production defaults of every duration with time running ``scale`` times faster
    (counts, such as the breaker's threshold or the client's retries, stay as they are)."""
    from django_connectycube.conf import DEFAULTS

    def scaled(value: Any) -> Any:
        if isinstance(value, tuple):  # TIMEOUT: (connect, read)
            return tuple(float(part) / scale for part in value)
        return float(value) / scale

    return {name: scaled(DEFAULTS[name]) for name in SCALED}


def visibility_timeout(scale: float) -> float:
    """The example project's broker visibility timeout (production's), ``scale`` times faster:
    a message a killed worker held comes back after it, as the countdown bound assumes."""
    from example_project.settings import CELERY_BROKER_TRANSPORT_OPTIONS

    return float(CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]) / scale


#: The environment variable naming the flag file of the mapping fault.
MAPPING_FAULT_ENV = "CHAOS_MAPPING_FAULT_FILE"
#: While the flag file exists, the mapping raises for users whose pk is a multiple of this.
MAPPING_FAULT_EVERY = 5
MAPPING_FAULT_MESSAGE = "chaos: the project's mapping callable failed"


class FaultTally:
    """Counts what the emulator's fault rules did, by kind, and every token it issued."""

    def __init__(self, server: EmulatorServer) -> None:
        self.counts: Counter[str] = Counter()
        self.tokens: set[str] = set()
        self._lock = threading.Lock()
        emulator = server.emulator
        decide = emulator.faults.decide

        def counted_decide(template: str, concrete: str) -> Any:
            decision = decide(template, concrete)
            if decision is not None:
                kind = (
                    "drop"
                    if decision.drop
                    else "timeout"
                    if decision.hold is not None
                    else "429"
                    if decision.status == 429
                    else "5xx"
                    if decision.status is not None
                    else None
                )
                if kind:
                    with self._lock:
                        self.counts[kind] += 1
            return decision

        emulator.faults.decide = counted_decide  # type: ignore[method-assign]
        create_session = emulator.store.create_session

        def recorded_create_session(*args: Any, **kwargs: Any) -> Any:
            session = create_session(*args, **kwargs)
            with self._lock:
                self.tokens.add(session.token)
            return session

        emulator.store.create_session = recorded_create_session  # type: ignore[method-assign]


class Outage:
    """ConnectyCube unreachable for ``seconds``: 80 % 5xx, 20 % dropped connections, on every
    route; the run's background faults are lifted meanwhile and restored after."""

    def __init__(self, server: EmulatorServer, seconds: float, background: dict[str, Any]) -> None:
        self.emulator = server.emulator
        self.seconds = seconds
        self.background = background
        self.requests = 0
        self.began = 0.0
        self.ended = 0.0
        self._before = 0
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        self.emulator.clear_faults()
        self.emulator.set_fault("*", error_rate=0.8, statuses=[502, 503, 504], drop_rate=0.2)
        self._before = self.emulator.request_count()
        self.began = time.monotonic()
        self._timer = threading.Timer(self.seconds, self.end)
        self._timer.daemon = True
        self._timer.start()

    def end(self) -> None:
        if self.ended:
            return
        self.requests = self.emulator.request_count() - self._before
        self.ended = time.monotonic()
        self.emulator.clear_faults()
        self.emulator.set_fault("*", **self.background)

    def wait(self) -> None:
        if self._timer is not None:
            self._timer.join()

    @property
    def happened(self) -> bool:
        return bool(self.began and self.ended)


def request_bound(
    *,
    seconds: float,
    processes: int,
    retries: int,
    threshold: int,
    cooldown: float,
    cooldown_max: float,
) -> int:
    """The most requests an outage of ``seconds`` may see with the circuit breaker working.

    Before the circuit opens: the threshold's failed pushes plus one push in flight per worker
    process. Then one probe per cool-down, the cool-down doubling from ``cooldown`` up to
    ``cooldown_max``. Every push or probe makes at most ``1 + retries`` requests (its first
    failing call, retried by the client), plus one to renew the application session.
    """
    probes, elapsed, pause = 0, 0.0, cooldown
    while elapsed < seconds:
        probes += 1
        elapsed += pause
        pause = min(cooldown_max, pause * 2)
    per_push = 1 + retries + 1
    return (threshold + processes + probes + 1) * per_push


class MappingFault:
    """The flag file that makes :func:`mapped_fields` raise, in every process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.began = 0.0

    def start(self) -> None:
        self.path.write_text("raise")
        self.began = time.monotonic()

    @property
    def active(self) -> bool:
        return self.path.exists()

    def seen(self) -> bool:
        """Whether a push has met the fault and recorded it on its row (the phase may end:
        when it happens depends on the workers, not on the workload's steps)."""
        from django_connectycube.models import CubeUser

        return CubeUser.objects.filter(last_error__contains=MAPPING_FAULT_MESSAGE).exists()

    def end(self) -> None:
        self.path.unlink(missing_ok=True)


@reads("username", "email", "first_name", "last_name", "phone", "website", "tags")
def mapped_fields(user: Any) -> dict[str, Any]:
    """The default mapping, failing for every ``MAPPING_FAULT_EVERY``-th user while the flag
    file named by ``CHAOS_MAPPING_FAULT_FILE`` exists (a bug shipped, then fixed)."""
    flag = os.environ.get(MAPPING_FAULT_ENV)
    if flag and user.pk % MAPPING_FAULT_EVERY == 0 and os.path.exists(flag):
        raise RuntimeError(f"{MAPPING_FAULT_MESSAGE} for user {user.pk}")
    return default_user_fields(user)
