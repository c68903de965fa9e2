"""The checks of a project's wiring: reset URLs, the broker's transport, the sweep in beat."""

import sys

import pytest
from celery import Celery
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_connectycube.checks import celery as celery_checks
from django_connectycube.checks.celery import SWEEP_TASK, check_celery
from django_connectycube.checks.configuration import check_password_reset_urls, check_settings

GOOD = {"APPLICATION_ID": 1, "AUTH_KEY": "k", "AUTH_SECRET": "s"}
SWEEP = {"connectycube-sweep": {"task": SWEEP_TASK, "schedule": 60.0}}


def ids(messages):
    return sorted(m.id for m in messages)


@pytest.fixture
def project_app(monkeypatch):
    """Make the checks see a project Celery app with the given configuration."""

    # Celery lets CELERY_BROKER_URL in the environment override the app's broker (the
    # integration run sets it): these tests are about the URL they configure.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)

    def make(broker_url, **conf):
        app = Celery("project", set_as_current=False)
        app.conf.update(broker_url=broker_url, **conf)
        monkeypatch.setattr(celery_checks, "configured_celery_app", lambda: app)
        return app

    return make


def test_reset_urls_of_the_test_project_pass():
    assert check_password_reset_urls() == []


def test_api_without_djangos_reset_urls_is_w010_with_the_views_to_mount():
    with override_settings(ROOT_URLCONF="tests.urls_without_auth"):
        messages = check_password_reset_urls()
    assert ids(messages) == ["connectycube.W010"]
    assert "password_reset_confirm" in messages[0].msg
    assert "PasswordResetConfirmView as password_reset_confirm" in messages[0].hint
    assert "django.contrib.auth.urls" not in messages[0].hint  # its reset form leaks accounts


def test_w010_shows_in_manage_py_check():
    with override_settings(ROOT_URLCONF="tests.urls_without_auth"):
        with pytest.raises(SystemCheckError, match=r"connectycube\.W010"):
            call_command("check", fail_level="WARNING")


def test_own_reset_template_is_not_w010(settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "PASSWORD_RESET_OPTIONS": {"email_template_name": "mine/reset.txt"},
    }
    with override_settings(ROOT_URLCONF="tests.urls_without_auth"):
        assert check_password_reset_urls() == []


def test_no_api_no_reset_check():
    with override_settings(ROOT_URLCONF="tests.urls_without_api"):
        assert check_password_reset_urls() == []


def test_redis_broker_without_the_redis_package_is_e010(project_app, monkeypatch):
    project_app("redis://:secret@127.0.0.1:6379/0", beat_schedule=SWEEP)
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` sees when absent
    messages = check_celery()
    assert ids(messages) == ["connectycube.E010"]
    assert "redis" in messages[0].msg
    assert "secret" not in messages[0].msg
    assert "django-connectycube[redis]" in messages[0].hint


def test_a_transport_module_that_cannot_load_is_e010(project_app, monkeypatch):
    for name in ("botocore", "boto3"):
        monkeypatch.setitem(sys.modules, name, None)  # what an import sees when absent
    monkeypatch.delitem(sys.modules, "kombu.transport.SQS", raising=False)
    project_app("sqs://", beat_schedule=SWEEP)
    messages = check_celery()
    assert ids(messages) == ["connectycube.E010"]
    assert "botocore" in messages[0].msg


def test_an_importable_transport_passes(project_app):
    project_app("redis://127.0.0.1:6379/0", beat_schedule=SWEEP)
    assert check_celery() == []


def test_eager_mode_needs_no_transport(project_app, monkeypatch):
    project_app("redis://127.0.0.1:6379/0", task_always_eager=True)
    monkeypatch.setitem(sys.modules, "redis", None)
    assert check_celery() == []  # neither E010 nor W011


def test_broker_without_the_sweep_in_beat_is_w011(project_app):
    project_app("redis://127.0.0.1:6379/0", beat_schedule={"x": {"task": "other", "schedule": 5.0}})
    messages = check_celery()
    assert ids(messages) == ["connectycube.W011"]
    assert "CELERY_BEAT_SCHEDULE" in messages[0].hint


def test_broker_with_the_sweep_in_beat_passes(project_app):
    project_app("redis://127.0.0.1:6379/0", beat_schedule=SWEEP)
    assert check_celery() == []


def test_a_database_beat_scheduler_is_not_second_guessed(project_app):
    project_app(
        "redis://127.0.0.1:6379/0",
        beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler",
    )
    assert check_celery() == []


def test_in_memory_broker_needs_no_sweep(project_app):
    project_app("memory://")
    assert check_celery() == []


def test_avatar_field_that_is_not_a_file_field_is_e011():
    with override_settings(CONNECTYCUBE={**GOOD, "AVATAR_FIELD": "username"}):
        messages = check_settings()
    assert ids(messages) == ["connectycube.E011"]
    assert "testapp.User.username" in messages[0].msg
    assert "FileField/ImageField" in messages[0].hint


def test_avatar_file_field_passes():
    with override_settings(CONNECTYCUBE={**GOOD, "AVATAR_FIELD": "avatar"}):
        assert check_settings() == []
