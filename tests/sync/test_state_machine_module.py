"""The link's state machine lives in one module, and its transitions are single atomic updates.

Issue: a row's state was written in nine places in five modules (one of them raw SQL), each
with its own idea of what goes with it. These tests hold the package to one writer.
"""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_connectycube.models import CubeUser

PACKAGE = Path(__file__).resolve().parents[2] / "django_connectycube"
User = get_user_model()


_SQL_UPDATE = re.compile(r"\bUPDATE\s+\S+\s+SET\b", re.IGNORECASE)


def _text(node: ast.Constant | ast.JoinedStr) -> str:
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else ""
    parts = node.values
    return "".join(p.value if isinstance(p, ast.Constant) else "x" for p in parts)


def _state_writes(path: Path) -> list[str]:
    """Places in a module that write a link's ``state``: ``state=`` passed to an ORM write
    (``update``, ``create``, ``bulk_create``, ``update_or_create``), ``x.state = …``, or SQL
    text that sets it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    writes = {"update", "create", "get_or_create", "update_or_create", "bulk_update"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in writes and any(k.arg == "state" for k in node.keywords):
                found.append(f"{path.name}:{node.lineno} .{node.func.attr}(state=…)")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "state":
                    found.append(f"{path.name}:{node.lineno} .state = …")
        elif isinstance(node, ast.Constant | ast.JoinedStr) and _SQL_UPDATE.search(_text(node)):
            found.append(f"{path.name}:{node.lineno} SQL text")
    return found


def test_nothing_but_the_state_module_writes_a_links_state():
    modules = [
        path
        for path in PACKAGE.rglob("*.py")
        if "emulator" not in path.parts
        and "migrations" not in path.parts
        and path.name != "state.py"
    ]
    writes = [write for path in modules for write in _state_writes(path)]
    assert writes == []


@pytest.mark.django_db
def test_the_save_path_runs_the_statement_the_orm_compiles(no_broker):
    user = User.objects.create(username="same")
    now = timezone.now()
    with CaptureQueriesContext(connection) as orm:
        CubeUser.objects.filter(user_id=user.pk).mark_owed(now)
    with CaptureQueriesContext(connection) as fast:
        assert CubeUser.objects.mark_user_owed(user.pk, now + timedelta(seconds=1), using="default")
    assert [q["sql"].split(" WHERE ")[0].split("= ")[0] for q in fast] == [
        q["sql"].split(" WHERE ")[0].split("= ")[0] for q in orm
    ]
    assert len(fast) == len(orm) == 1
    link = CubeUser.objects.get(user=user)
    assert (link.dirty_version, link.state, link.updated_at) == (
        3,
        "pending",
        now + timedelta(seconds=1),
    )
    gone = User.objects.create(username="gone")
    gone_pk = gone.pk
    gone.delete()
    assert CubeUser.objects.mark_user_owed(gone_pk, now, using="default") == 0


@pytest.mark.django_db
def test_a_failure_keeps_its_run_and_a_success_ends_it(no_broker):
    user = User.objects.create(username="run")
    rows = CubeUser.objects.filter(user=user)
    start = timezone.now()
    common = {"permanent": False, "enqueued_at": None, "horizon": timedelta(days=3)}
    rows.record_failure("one", now=start, retry_at=start, **common)
    later = start + timedelta(hours=5)
    rows.record_failure("two", now=later, retry_at=later, **common)
    link = rows.get()
    assert (link.attempts, link.failing_since, link.last_error) == (2, start, "two")
    rows.record_failure("late", now=start + timedelta(days=3, seconds=1), retry_at=later, **common)
    assert rows.get().state == "failed"
    rows.resync(timezone.now())
    link = rows.get()
    assert (link.state, link.attempts, link.failing_since, link.next_attempt_at) == (
        "pending",
        0,
        None,
        None,
    )
    rows.record_pushed(link.dirty_version, timezone.now())
    assert rows.get().state == "synced"
    assert rows.record_failure("not owed", now=later, retry_at=later, **common) == 0


@pytest.mark.django_db
def test_a_deferral_is_not_an_attempt(no_broker):
    user = User.objects.create(username="deferred")
    rows = CubeUser.objects.filter(user=user)
    now = timezone.now()
    rows.record_failure(
        "circuit open",
        now=now,
        permanent=False,
        retry_at=now,
        enqueued_at=None,
        horizon=timedelta(days=3),
        count=False,
    )
    link = rows.get()
    assert (link.attempts, link.failing_since, link.last_error) == (0, now, "circuit open")
