"""Row counts the admin can afford on a table of millions: exact up to a cap, else an estimate.

``COUNT(*)`` reads every row it counts, so the changelist's paginator and the sync-health page
count at most :data:`CAP` rows of a kind. Beyond that they show the query planner's estimate on
PostgreSQL (from the statistics autovacuum keeps), and "more than CAP" elsewhere. The rows an
operator acts on (owed and failed ones) are normally few, and counted exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

__all__ = ["CAP", "BoundedCount", "BoundedCountPaginator", "bounded_count"]

#: The most rows one count reads.
CAP = 10_000


@dataclass(frozen=True)
class BoundedCount:
    """A count that is exact, the planner's estimate, or only known to exceed ``value``."""

    value: int
    exact: bool = True
    estimated: bool = False

    def __str__(self) -> str:
        if self.exact:
            return str(self.value)
        if self.estimated:
            return f"about {self.value:,}"
        return f"more than {self.value:,}"

    def __add__(self, other: BoundedCount) -> BoundedCount:
        return BoundedCount(
            self.value + other.value,
            self.exact and other.exact,
            (self.estimated or other.estimated) and not (self.exact and other.exact),
        )


def _estimate(queryset: QuerySet[Any]) -> int | None:
    """The planner's row estimate for ``queryset`` (PostgreSQL), without running it."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().values("pk").explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def bounded_count(queryset: QuerySet[Any], cap: int | None = None) -> BoundedCount:
    """How many rows ``queryset`` has, reading at most ``cap`` (default :data:`CAP`) + 1."""
    cap = CAP if cap is None else cap
    counted = queryset.order_by()[: cap + 1].count()
    if counted <= cap:
        return BoundedCount(counted)
    estimate = _estimate(queryset)
    if estimate is not None and estimate > cap:
        return BoundedCount(estimate, exact=False, estimated=True)
    return BoundedCount(cap, exact=False)


class BoundedCountPaginator(Paginator):
    """The changelist's paginator: pages up to the bounded count (an estimate pages past the
    last real row to an empty page, never to an error)."""

    @cached_property
    def bounded(self) -> BoundedCount:
        return bounded_count(self.object_list)

    @cached_property
    def count(self) -> int:
        found = self.bounded
        return found.value if found.exact or found.estimated else found.value + 1
