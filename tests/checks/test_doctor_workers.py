"""connectycube_doctor: is a worker consuming the queue the sync tasks are sent to?

Issue: with every worker stopped the doctor said all was fine while users waited ("1 owed …
13 s"). Eager mode and an in-memory broker cannot answer a ping, so the real answers come from
Redis (this suite's broker) and a real worker process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from django_connectycube.checks.doctor import DoctorContext, Status
from django_connectycube.checks.doctor.worker import check_workers
from tests.worker import Worker, use_broker

from .test_doctor_connection import by_check, doctor


@pytest.fixture(autouse=True)
def _broker_from_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    # Celery lets the CELERY_BROKER_URL environment variable override the app's broker.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)


@pytest.fixture
def queue(settings: Any) -> str:
    """A sync queue of this test alone, so no other worker on the broker consumes it."""
    name = f"cube-doctor-{uuid.uuid4().hex[:10]}"
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TASK_QUEUE": name}
    return name


def test_eager_mode_and_an_in_process_broker_are_not_asked():
    for conf in ({"task_always_eager": True}, {}):
        app = Celery("doctor-test", broker="memory://", set_as_current=False)
        app.conf.update(conf)
        finding = check_workers(DoctorContext(celery_app=app))
        assert finding.status is Status.SKIP


@pytest.fixture
def test_app(redis_url: str) -> Iterator[Any]:
    """The suite's Celery app (the one the doctor finds), on Redis."""
    from tests.celery import app

    previous, eager = app.conf.broker_write_url, app.conf.task_always_eager
    use_broker(app, redis_url)
    app.conf.task_always_eager = False  # the unit settings run tasks in process
    try:
        yield app
    finally:
        app.conf.task_always_eager = eager
        use_broker(app, previous)


@pytest.mark.integration
def test_no_worker_on_the_sync_queue_fails_the_doctor(test_app, queue):
    report, code = doctor("--check", "workers", "--timeout", "2")
    finding = by_check(report)["workers"]
    assert finding["status"] == "fail"
    assert "No Celery worker answered" in finding["message"] or queue in finding["message"]
    assert f"-Q {queue}" in finding["action"]
    assert code != 0


@pytest.mark.integration
def test_a_worker_consuming_the_sync_queue_is_ok(test_app, queue, redis_url):
    worker = Worker(
        broker_url=redis_url,
        database_url="sqlite://:memory:",
        connectycube={
            "API_URL": "http://127.0.0.1:9",
            "APPLICATION_ID": 1,
            "AUTH_KEY": "k",
            "AUTH_SECRET": "s",
        },
        queue=queue,
        concurrency=1,
    ).start()
    try:
        finding = check_workers(DoctorContext(celery_app=test_app, timeout=2))
    finally:
        worker.stop()
    assert finding.status is Status.OK, finding.message
    assert [node.split("@")[0] for node in finding.details["consuming"]] == [worker.node]
    after = check_workers(DoctorContext(celery_app=test_app, timeout=2))
    assert after.status is Status.FAIL  # the same worker, stopped
