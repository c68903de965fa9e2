"""Requests arriving at the emulator, as its counter tells: per whole second, and pauses.

The counter is read on a fixed beat in a thread (in-process for the test emulator, through the
control API for an emulator process). A count is true at some instant between asking and the
answer, so only reads answered within ``SLACK`` of a whole second mark that second's end: on a
loaded machine fewer seconds qualify, never a wrong one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: A read answered later than this after its whole second does not mark the second's end.
SLACK = 0.03


class Arrivals:
    """``with Arrivals(read) as seen: ...`` then ``seen.per_second()``, ``seen.longest_still()``."""

    def __init__(self, read: Callable[[], int], every: float = 0.05) -> None:
        self.read = read
        self.every = every
        self.samples: list[tuple[float, float, int]] = []  # (asked, answered, count)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arrivals", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            time.sleep(self.every - time.time() % self.every)  # on the beat: whole seconds too
            asked = time.time()
            count = self.read()
            self.samples.append((asked, time.time(), count))

    def __enter__(self) -> Arrivals:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def per_second(self) -> dict[int, int]:
        """Requests that arrived in each whole second both of whose ends were read in time."""
        whole = {int(a): n for a, answered, n in self.samples if answered - int(a) <= SLACK}
        return {k: whole[k + 1] - whole[k] for k in sorted(whole) if k + 1 in whole}

    def mean_rate(self, start: float, end: float) -> float:
        """Requests per second from the first read after ``start`` to the last before ``end``."""
        inside = [(a, n) for a, _, n in self.samples if start <= a <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, n0), (t1, n1) = inside[0], inside[-1]
        return (n1 - n0) / (t1 - t0)

    def first_arrival(self) -> float:
        """When the first request had arrived (the first read that counted one)."""
        first = self.samples[0]
        return next((a for a, _, n in self.samples if n > first[2]), first[0])

    def longest_still(self, after: float = 0.0) -> float:
        """The longest span (seconds) after ``after`` in which no request arrived."""
        samples = [(a, n) for a, _, n in self.samples if a >= after]
        best, start = 0.0, 0
        for i in range(1, len(samples)):
            if samples[i][1] != samples[start][1]:
                start = i
            best = max(best, samples[i][0] - samples[start][0])
        return best
