"""The query plans of an operation: every statement it runs, replayed under ``EXPLAIN ANALYZE``.

Each statement is explained inside a transaction that is rolled back, so an ``UPDATE`` changes
nothing. A plan is summed up by its scans (which index, or a sequential scan of which table) and
its execution time; a sequential scan of one of the big tables is what makes an operation cost
O(users).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SCAN = re.compile(
    r"(Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)(?: Backward)?"
    r"(?: using (\S+))?(?: on (\S+))?"
)
_EXPLAINED = ("SELECT", "UPDATE", "DELETE", "WITH")


@dataclass
class Plan:
    sql: str
    params: Any
    ms: float  # as run by the operation
    text: str = ""

    @property
    def scans(self) -> list[str]:
        found = []
        for kind, index, table in _SCAN.findall(self.text):
            found.append(f"{kind} {index or table}".strip())
        return found

    def seq_scans(self, tables: tuple[str, ...]) -> list[str]:
        return [s for s in self.scans if s.startswith("Seq Scan") and s.split()[-1] in tables]

    @property
    def execution_ms(self) -> float:
        match = re.search(r"Execution Time: ([\d.]+) ms", self.text)
        return float(match.group(1)) if match else float("nan")


def capture(op: Callable[[], Any]) -> list[Plan]:
    """Run ``op`` once, recording each statement with its parameters and time."""
    from django.db import connection

    plans: list[Plan] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            plans.append(Plan(sql, params, (time.perf_counter() - started) * 1e3))

    with connection.execute_wrapper(wrapper):
        op()
    return plans


def explain(plans: list[Plan]) -> list[Plan]:
    """Fill in each plan's ``EXPLAIN (ANALYZE, BUFFERS)``; statements that only manage the
    transaction or write new rows are left out."""
    from django.db import connection, transaction

    explained = []
    for plan in plans:
        if not plan.sql.lstrip().upper().startswith(_EXPLAINED):
            continue
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {plan.sql}", plan.params)
                plan.text = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True)
        explained.append(plan)
    return explained


def summary(plans: list[Plan], total: list[Plan], big: tuple[str, ...]) -> str:
    """One line: statements, time in the database, the scans used, any sequential scan of a
    big table."""
    scans = sorted({s for p in plans for s in p.scans if s.split()[-1] != "django_session"})
    seq = sorted({s for p in plans for s in p.seq_scans(big)})
    db_ms = sum(p.ms for p in total)
    verdict = f"**sequential scans: {', '.join(seq)}**" if seq else "no sequential scan"
    return (
        f"{len(total)} statements, {db_ms:.1f} ms in the database; plans: {'; '.join(scans)}; "
        f"{verdict}"
    )


def full_text(name: str, plans: list[Plan]) -> str:
    out = [f"## {name}"]
    for plan in plans:
        out.append(f"\n-- {plan.ms:.2f} ms as run\n{_shown(plan.sql, plan.params)}\n{plan.text}")
    return "\n".join(out) + "\n\n"


def _shown(sql: str, params: Any) -> str:
    values = tuple(repr(p) if isinstance(p, str) else p for p in params or ())
    try:
        return sql % values
    except (TypeError, ValueError):
        return f"{sql}  -- {values}"
