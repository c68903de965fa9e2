"""Injected failures: error statuses, 429 with ``Retry-After``, latency, drops and timeouts.

A client's retry logic is only as good as the failures it was tested against, and the real
service fails rarely and unpredictably. Rules here make failures happen on demand, either
randomly (``error_rate`` …, seeded for repeatability) or deterministically (``count`` limits a
rule to the next N matching requests; ``sequence`` scripts the next outcomes one by one, so a
test can say "a 503, then success").

Route patterns are matched against both the route template (``GET /users/{id}``) and the
concrete request line (``GET /users/42``), by equality, glob (:func:`fnmatch.fnmatchcase`) or a
full regex match; a pattern starting with ``/`` ignores the method.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .wire import ApiError

__all__ = ["FaultDecision", "FaultRule", "FaultSet", "route_matches"]

DEFAULT_STATUSES = (500, 503)
DEFAULT_TIMEOUT_SECONDS = 30.0
_SEQUENCE_WORDS = frozenset({"ok", "drop", "timeout"})


def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def route_matches(pattern: str, template: str, concrete: str) -> bool:
    """Whether a fault/counter pattern selects a request (see the module docstring)."""
    if pattern in ("*", ""):
        return True
    candidates: tuple[str, ...] = (template, concrete)
    if pattern.startswith("/"):
        candidates = tuple(c.split(" ", 1)[-1] for c in candidates)
    if pattern in candidates:
        return True
    if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
        return True
    regex = _compile(pattern)
    return regex is not None and any(regex.fullmatch(c) for c in candidates)


@dataclass
class FaultDecision:
    """What to do to one request: sleep first, then answer normally or fail in one way."""

    latency: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    drop: bool = False
    hold: float | None = None


@dataclass
class FaultRule:
    """One configured fault; see :meth:`from_json` for the accepted keys."""

    id: int
    route: str
    error_rate: float = 0.0
    statuses: tuple[int, ...] = DEFAULT_STATUSES
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    latency: float = 0.0
    drop_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    count: int | None = None
    sequence: list[int | str] | None = None
    seed: int | None = None
    applied: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_json(cls, rule_id: int, data: Mapping[str, Any]) -> FaultRule:
        """Validate a control-API fault body; 422 naming the bad key otherwise."""
        if not isinstance(data, Mapping):
            raise ApiError(422, ["A fault must be a JSON object"])
        route = data.get("route", "*")
        if not isinstance(route, str):
            raise ApiError.field("route", "must be a string")

        def rate(name: str) -> float:
            value = data.get(name, 0.0)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= 1
            ):
                raise ApiError.field(name, "must be a number between 0 and 1")
            return float(value)

        def seconds(name: str, default: float) -> float:
            value = data.get(name, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ApiError.field(name, "must be a non-negative number of seconds")
            return float(value)

        statuses = data.get("statuses", list(DEFAULT_STATUSES))
        if (
            not isinstance(statuses, list)
            or not statuses
            or not all(isinstance(s, int) and 400 <= s <= 599 for s in statuses)
        ):
            raise ApiError.field("statuses", "must be a non-empty list of 4xx/5xx statuses")
        count = data.get("count")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise ApiError.field("count", "must be a positive integer")
        sequence = data.get("sequence")
        if sequence is not None and (
            not isinstance(sequence, list)
            or not sequence
            or not all(
                (isinstance(s, int) and not isinstance(s, bool) and 200 <= s <= 599)
                or (isinstance(s, str) and s in _SEQUENCE_WORDS)
                for s in sequence
            )
        ):
            raise ApiError.field(
                "sequence", "must be a non-empty list of statuses or 'ok'/'drop'/'timeout'"
            )
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ApiError.field("seed", "must be an integer")
        rule = cls(
            id=rule_id,
            route=route,
            error_rate=rate("error_rate"),
            statuses=tuple(statuses),
            rate_limit_rate=rate("rate_limit_rate"),
            retry_after=seconds("retry_after", 1.0),
            latency=seconds("latency", 0.0),
            drop_rate=rate("drop_rate"),
            timeout_rate=rate("timeout_rate"),
            timeout_seconds=seconds("timeout_seconds", seconds("timeout", DEFAULT_TIMEOUT_SECONDS)),
            count=count,
            sequence=list(sequence) if sequence is not None else None,
            seed=seed,
        )
        if seed is not None:
            rule.rng.seed(seed)
        return rule

    @property
    def can_fail(self) -> bool:
        """Whether the rule may fail a request, not only delay it."""
        rates = (self.error_rate, self.rate_limit_rate, self.drop_rate, self.timeout_rate)
        return self.sequence is not None or any(rate > 0 for rate in rates)

    @property
    def exhausted(self) -> bool:
        if self.sequence is not None and self.applied >= len(self.sequence):
            return True
        return self.count is not None and self.applied >= self.count

    def decide(self) -> FaultDecision:
        """Consume one matching request and say what happens to it."""
        decision = FaultDecision(latency=self.latency)
        if self.sequence is not None:
            step = self.sequence[self.applied]
            self.applied += 1
            if step == "drop":
                decision.drop = True
            elif step == "timeout":
                decision.hold = self.timeout_seconds
            elif isinstance(step, int) and step >= 300:
                decision.status = step
                if step == 429:
                    decision.retry_after = self.retry_after
            return decision
        self.applied += 1
        roll = self.rng.random()
        thresholds = itertools.accumulate(
            (self.drop_rate, self.timeout_rate, self.rate_limit_rate, self.error_rate)
        )
        drop_at, timeout_at, limit_at, error_at = thresholds
        if roll < drop_at:
            decision.drop = True
        elif roll < timeout_at:
            decision.hold = self.timeout_seconds
        elif roll < limit_at:
            decision.status = 429
            decision.retry_after = self.retry_after
        elif roll < error_at:
            decision.status = self.rng.choice(self.statuses)
            if decision.status == 429:
                decision.retry_after = self.retry_after
        return decision

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "route": self.route,
            "error_rate": self.error_rate,
            "statuses": list(self.statuses),
            "rate_limit_rate": self.rate_limit_rate,
            "retry_after": self.retry_after,
            "latency": self.latency,
            "drop_rate": self.drop_rate,
            "timeout_rate": self.timeout_rate,
            "timeout_seconds": self.timeout_seconds,
            "count": self.count,
            "sequence": self.sequence,
            "seed": self.seed,
            "applied": self.applied,
        }


class FaultSet:
    """The active rules of one emulator. Every matching rule's latency adds up (a WAN delay on
    every route stays in force beside a rule that fails one route); the first matching rule that
    can fail the request decides whether it does, and later ones are not consulted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        # Held ("timeout") requests wait on this event so that reset/stop can release them.
        self._release = threading.Event()

    def add(self, data: Mapping[str, Any]) -> FaultRule:
        rule = FaultRule.from_json(next(self._ids), data)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules = []
        self.release_held()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self, template: str, concrete: str) -> FaultDecision | None:
        if not self._rules:  # fast path without the lock: the common case in benchmarks
            return None
        decided: FaultDecision | None = None
        latency = 0.0
        with self._lock:
            for rule in list(self._rules):
                if rule.exhausted or not route_matches(rule.route, template, concrete):
                    continue
                decision = rule.decide()
                if rule.exhausted:
                    self._rules.remove(rule)
                latency += decision.latency
                decided = decision
                if rule.can_fail:
                    break
        if decided is not None:
            decided.latency = latency
        return decided

    def hold(self, seconds: float) -> None:
        """Keep a request waiting (a server that never answers) until released or timed out."""
        self._release.wait(seconds)

    def release_held(self) -> None:
        release, self._release = self._release, threading.Event()
        release.set()
