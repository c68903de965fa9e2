"""The pytest plugin keeps a user's tests off their broker, unless a test opts in."""

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

USER_TESTS = """
import pytest
from django.contrib.auth import get_user_model

from django_connectycube.models import CubeUser


@pytest.mark.django_db(transaction=True)
def test_signup_is_recorded_not_published(connectycube_celery):
    user = get_user_model().objects.create(username="ann")
    assert connectycube_celery.names() == ["django_connectycube.push_user"]
    assert connectycube_celery.sent[0].args == (user.pk,)
    # A failed publish would have cleared enqueued_at for the sweep.
    assert CubeUser.objects.get(user=user).enqueued_at is not None


@pytest.mark.django_db(transaction=True)
def test_recorded_tasks_run_against_the_emulator(connectycube_emulator, connectycube_celery):
    get_user_model().objects.create(username="bob")
    assert connectycube_celery.run() >= 1
    assert [u["login"] for u in connectycube_emulator.users] == ["bob"]
    assert CubeUser.objects.get().state == CubeUser.State.SYNCED


@pytest.mark.connectycube_real_broker
@pytest.mark.django_db(transaction=True)
def test_opting_in_publishes_to_the_configured_broker(connectycube_celery):
    assert connectycube_celery is None
    user = get_user_model().objects.create(username="cid")
    from django_connectycube.sync import enqueue

    assert enqueue.flush(30.0)
    # Nothing listens on the broker's port: the publish failed and the sweep owns the change.
    assert CubeUser.objects.get(user=user).enqueued_at is None
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_users_tests_never_reach_an_unreachable_broker(pytester, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{closed_port()}/0")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), *sys.path]))
    pytester.makeini("[pytest]\nDJANGO_SETTINGS_MODULE = tests.settings\n")
    pytester.makepyfile(test_user_project=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3)


@pytest.mark.django_db
def test_recorder_keeps_name_arguments_and_queue(connectycube_celery, settings):
    from django_connectycube.sync import enqueue

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TASK_QUEUE": "cube"}
    assert enqueue.enqueue_delete(41)
    (sent,) = connectycube_celery.sent
    assert (sent.name, sent.args, sent.options) == (
        "django_connectycube.delete_remote_user",
        (41,),
        {"queue": "cube"},
    )
    connectycube_celery.clear()
    assert connectycube_celery.sent == []
