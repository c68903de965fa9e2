"""connectycube_doctor: the Celery broker, the sweep in beat, and the sync backlog."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from celery import Celery
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_connectycube.checks.doctor import DoctorContext, Status
from django_connectycube.checks.doctor.sync_health import check_drift, check_sync_health
from django_connectycube.checks.doctor.worker import SWEEP_TASK, check_broker, check_sweep_schedule
from django_connectycube.models import CubeUser
from django_connectycube.sync.enqueue import sweep_dirty

from .test_doctor_connection import closed_port

User = get_user_model()


@pytest.fixture(autouse=True)
def _broker_from_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    # Celery lets the CELERY_BROKER_URL environment variable override the app's broker.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)


def celery_app(broker: str, **conf) -> Celery:
    app = Celery("doctor-test", broker=broker, set_as_current=False)
    app.conf.update(conf)
    return app


def test_the_sweep_task_name_is_the_registered_one():
    assert sweep_dirty.name == SWEEP_TASK


def test_the_context_inspects_the_app_the_tasks_are_sent_with():
    assert DoctorContext().celery_app is sweep_dirty.app


def test_no_celery_app_of_the_project_is_a_failure():
    finding = check_broker(DoctorContext(celery_app=Celery("default", set_as_current=False)))
    assert finding.status is Status.FAIL
    assert "connectycube.W002" in finding.message


def test_an_unreachable_broker_fails_quickly():
    app = celery_app(f"redis://127.0.0.1:{closed_port()}/3")
    finding = check_broker(DoctorContext(celery_app=app, timeout=2))
    assert finding.status is Status.FAIL
    assert "Cannot connect to redis://127.0.0.1:" in finding.message
    assert "CELERY_BROKER_URL" in finding.action


def test_a_missing_redis_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` sees when absent
    app = celery_app("redis://127.0.0.1:6379/3")
    finding = check_broker(DoctorContext(celery_app=app))
    assert finding.status is Status.FAIL
    assert "needs Python packages that do not import: redis" in finding.message
    assert "django-connectycube[redis]" in finding.action


def test_a_transport_that_cannot_load_is_named(monkeypatch):
    # kombu's SQS transport imports boto3/botocore: as if they were not installed.
    for name in ("botocore", "boto3"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "kombu.transport.SQS", raising=False)
    finding = check_broker(DoctorContext(celery_app=celery_app("sqs://")))
    assert finding.status is Status.FAIL
    assert "botocore" in finding.message


def test_passwords_in_the_broker_url_are_not_shown():
    app = celery_app(f"redis://:hunter2@127.0.0.1:{closed_port()}/3")
    finding = check_broker(DoctorContext(celery_app=app, timeout=2))
    assert "hunter2" not in finding.message
    assert "hunter2" not in str(finding.details)


def test_eager_mode_and_an_in_process_broker_warn():
    eager = check_broker(DoctorContext(celery_app=celery_app("memory://", task_always_eager=True)))
    memory = check_broker(DoctorContext(celery_app=celery_app("memory://")))
    assert eager.status is Status.WARN and "task_always_eager" in eager.message
    assert memory.status is Status.WARN and "never receives" in memory.message


@pytest.mark.integration
def test_a_reachable_redis_broker_is_ok(redis_url):
    finding = check_broker(DoctorContext(celery_app=celery_app(redis_url)))
    assert finding.status is Status.OK
    assert finding.details["transport"] == "redis"


def test_beat_without_the_sweep_warns_with_the_entry_to_add():
    app = celery_app(
        "redis://127.0.0.1:6379/3",
        beat_schedule={"other": {"task": "myapp.cleanup", "schedule": 60.0}},
    )
    finding = check_sweep_schedule(DoctorContext(celery_app=app))
    assert finding.status is Status.WARN
    assert SWEEP_TASK in finding.message
    assert "CELERY_BEAT_SCHEDULE" in finding.action


def test_beat_with_the_sweep_is_ok():
    app = celery_app(
        "redis://127.0.0.1:6379/3",
        beat_schedule={
            "connectycube-sweep": {"task": SWEEP_TASK, "schedule": timedelta(seconds=90)}
        },
    )
    finding = check_sweep_schedule(DoctorContext(celery_app=app))
    assert finding.status is Status.OK
    assert "'connectycube-sweep'" in finding.message
    assert "every 90 s" in finding.message


def test_the_sweep_is_not_asked_for_without_a_broker():
    app = celery_app("memory://", task_always_eager=True)
    assert check_sweep_schedule(DoctorContext(celery_app=app)).status is Status.SKIP


def link(state: str, *, age: timedelta = timedelta(0), n: int = 1) -> None:
    for _ in range(n):
        row = CubeUser.objects.create(
            external_id=f"doctor-{CubeUser.objects.count()}-{state}", state=state
        )
        CubeUser.objects.filter(pk=row.pk).update(updated_at=timezone.now() - age)


@pytest.mark.django_db
def test_failed_rows_are_counted_with_what_to_do():
    link("synced", n=3)
    link("failed", n=2)
    finding = check_sync_health(DoctorContext())
    assert finding.status is Status.WARN
    assert finding.details["failed"] == 2
    assert finding.details["states"] == {"synced": 3, "failed": 2}
    assert "2 user(s) gave up syncing" in finding.message
    assert "connectycube_sync --user" in finding.action


@pytest.mark.django_db
def test_an_old_owed_change_warns_and_a_fresh_one_does_not(settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SWEEP_AFTER": 300}
    link("pending", age=timedelta(minutes=2))
    fresh = check_sync_health(DoctorContext())
    assert fresh.status is Status.OK
    assert fresh.details["owed"] == 1
    assert 115 <= fresh.details["oldest_owed_seconds"] <= 125
    link("deleting", age=timedelta(hours=3))
    stale = check_sync_health(DoctorContext())
    assert stale.status is Status.WARN
    assert stale.details["owed"] == 2
    assert "waiting at least 3.0 h" in stale.message
    assert "worker" in stale.action


@pytest.mark.django_db
def test_an_empty_table_is_healthy():
    finding = check_sync_health(DoctorContext())
    assert finding.status is Status.OK
    assert finding.message == "0 link(s); 0 owed; 0 failed."


@pytest.mark.django_db
def test_a_missing_table_is_a_finding(monkeypatch):
    from django.db import DatabaseError

    def broken(*args, **kwargs):
        raise DatabaseError('relation "django_connectycube_cubeuser" does not exist')

    monkeypatch.setattr(CubeUser.objects, "filter", broken)
    finding = check_sync_health(DoctorContext())
    assert finding.status is Status.FAIL
    assert "migrate" in finding.action


@pytest.mark.django_db
def test_drift_fails_the_doctor_until_it_is_repaired():
    from django_connectycube.models import DriftScan

    never = check_drift(DoctorContext())
    assert never.status is Status.WARN and "verify_links" in never.action
    DriftScan.objects.create(pk=1, last_run_at=timezone.now() - timedelta(minutes=3))
    assert check_drift(DoctorContext()).status is Status.OK
    user = get_user_model().objects.create(username="gone")
    found = timezone.now()
    CubeUser.objects.filter(user=user).update(
        drift_found_at=found, last_error="Drift: missing on ConnectyCube (user 7)"
    )
    finding = check_drift(DoctorContext())
    assert finding.status is Status.FAIL and finding.details["drifted"] == 1
    assert "missing on ConnectyCube" in finding.message and "3 min ago" in finding.message
    assert "--repair" in finding.action
    CubeUser.objects.filter(user=user).update(last_synced_at=found + timedelta(seconds=1))
    assert check_drift(DoctorContext()).status is Status.OK  # pushed since: repaired


def test_the_settings_finding_reports_the_registered_system_checks(settings):
    from django_connectycube.checks.doctor import check_system

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_KEY": None, "PASSWORD_SECRETS": None}
    settings.SILENCED_SYSTEM_CHECKS = ["connectycube.W005"]
    finding = check_system(DoctorContext())
    assert finding.status is Status.FAIL  # E001 is an error
    ids = [m["id"] for m in finding.details["messages"]]
    assert "connectycube.E001" in ids and "connectycube.W004" in ids
    assert "connectycube.W005" not in ids  # silenced, as manage.py check leaves it out
    assert 'connectycube.E001: CONNECTYCUBE["AUTH_KEY"] is not set.' in finding.message
    assert "manage.py check" in finding.action


def test_the_settings_finding_leaves_the_celery_ids_to_the_broker_and_sweep(monkeypatch, settings):
    from django_connectycube.checks import celery as celery_checks
    from django_connectycube.checks.doctor import check_system

    monkeypatch.setattr(celery_checks, "configured_celery_app", lambda: None)  # W002
    settings.SILENCED_SYSTEM_CHECKS = [
        "connectycube.W004",
        "connectycube.W005",
        "connectycube.W012",
    ]
    finding = check_system(DoctorContext())
    assert finding.status is Status.OK, finding.message
    assert check_broker(DoctorContext(celery_app=Celery("default"))).status is Status.FAIL
