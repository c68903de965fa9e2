"""Guards on the save path's cost, counted (never timed): queries added by the app, and no HTTP.

Timings live in ``python -m benchmarks``; these tests pin down the shape that makes them cheap.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def no_http(monkeypatch):
    """Any HTTP request from the save path fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the save path must not make HTTP requests")

    monkeypatch.setattr("requests.Session.send", refuse)
    monkeypatch.setattr("requests.adapters.HTTPAdapter.send", refuse)


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "celery.app.task.Task.apply_async",
        lambda self, args=(), kwargs=None, **options: calls.append((self.name, args)),
    )
    return calls


def queries(settings, enabled: bool, action) -> list[str]:
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": enabled}
    with CaptureQueriesContext(connection) as captured:
        action()
    return [q["sql"] for q in captured]


def test_create_costs_one_insert_and_its_savepoint_more(
    settings, no_http, sent, django_capture_on_commit_callbacks
):
    off = queries(settings, False, lambda: User.objects.create(username="off"))
    with django_capture_on_commit_callbacks(execute=True):
        on = queries(settings, True, lambda: User.objects.create(username="on"))
    extra = on[len(off) :]
    assert sum(q.startswith("INSERT") for q in off) == 1  # the user row alone
    inserts = [q for q in extra if q.startswith("INSERT")]
    assert len(inserts) == 1 and "connectycube_cubeuser" in inserts[0]
    # The INSERT runs in a savepoint (so a conflict can be taken over): 1 write + 2 savepoint ops.
    assert len(on) - len(off) == 3, extra
    assert [name for name, _ in sent] == ["django_connectycube.push_user"]


def test_update_save_costs_exactly_one_query_more(
    settings, no_http, sent, django_capture_on_commit_callbacks
):
    user = User.objects.create(username="upd")
    user.first_name = "A"
    off = queries(settings, False, user.save)
    user.first_name = "B"
    with django_capture_on_commit_callbacks(execute=True):
        on = queries(settings, True, user.save)
    assert len(on) == len(off) + 1
    assert on[-1].startswith("UPDATE") and "connectycube_cubeuser" in on[-1]
    assert len(sent) == 1  # one enqueue after commit


def test_unmapped_update_fields_cost_nothing(settings, no_http, sent):
    user = User.objects.create(username="quiet")
    sent.clear()
    off = queries(settings, False, lambda: user.save(update_fields=["bio"]))
    on = queries(settings, True, lambda: user.save(update_fields=["bio"]))
    assert len(on) == len(off)
    assert sent == []
