"""End to end with real Celery worker processes on Redis and on RabbitMQ, PostgreSQL and the
emulator.

No eager mode here: tasks travel through the broker to a separate prefork worker that shares
the PostgreSQL test database, so delivery, redelivery and worker death are the real thing. Every
test runs once per broker: Redis and RabbitMQ differ exactly where retries live (Redis redelivers
an unacknowledged message after its visibility timeout; RabbitMQ when the consumer's channel
closes), so the failure policy must hold on both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import connection, transaction
from kombu.exceptions import OperationalError

from django_connectycube.models import CubeUser
from django_connectycube.sync import enqueue
from tests.conftest import unavailable
from tests.worker import Worker, database_url_of, use_broker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
User = get_user_model()
PNG = b"\x89PNG\r\n\x1a\n" + b"avatar" * 40


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The broker of this round, which the test process publishes to as well."""
    from tests.celery import app

    url = request.getfixturevalue("redis_url" if request.param == "redis" else "amqp_url")
    previous = app.conf.broker_write_url
    use_broker(app, url)
    try:
        yield url
    finally:
        enqueue.flush(10.0)
        use_broker(app, previous)


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, broker_url, connectycube_emulator_server):
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            unavailable(
                "needs PostgreSQL shared with a worker process: run with "
                "DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres"
            )
        database_url = database_url_of(connection.settings_dict)
    server = connectycube_emulator_server
    w = Worker(
        broker_url=broker_url,
        database_url=database_url,
        connectycube={
            "API_URL": server.url,
            "APPLICATION_ID": server.emulator.application_id,
            "AUTH_KEY": server.emulator.auth_key,
            "AUTH_SECRET": server.emulator.auth_secret,
        },
        # Some retries are held by the broker as countdowns, the others wait in the database
        # for the sweep: both paths run on both brokers.
        extra_env={"CONNECTYCUBE_TEST_COUNTDOWN_MAX": "0.5"},
    ).start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def cube(connectycube_emulator, worker, settings):
    from tests.celery import app

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TASK_QUEUE": worker.queue}
    assert app.conf.broker_write_url == worker.broker_url, "the test process must publish there"
    return connectycube_emulator


@pytest.fixture
def beat() -> Iterator[None]:
    """``sweep_dirty`` every half second, as Celery beat runs it every minute in production:
    it hands over the retries that wait in the database for their due time."""
    import threading

    from django.db import connection as thread_connection

    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.wait(0.5):
                enqueue.sweep()
        finally:
            thread_connection.close()

    thread = threading.Thread(target=run, name="test-beat", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


def external_id_of(user_pk):
    """The external id minted for the user's link (kept by its tombstone after a delete)."""
    link = CubeUser.objects.filter(user_id=user_pk).first()
    return link.external_id if link is not None else None


def remote(cube, user_pk, external_id=None):
    external_id = external_id or external_id_of(user_pk)
    return [u for u in cube.users if u.get("external_id") == external_id]


def synced(user_pk, **expected):
    link = CubeUser.objects.filter(user_id=user_pk).first()
    if link is None or link.state != "synced":
        return None
    return link


def test_create_update_avatar_delete_end_to_end(cube, worker):
    user = User.objects.create(username="erin", email="erin@example.com", first_name="Erin")
    wait_until(lambda: synced(user.pk))
    assert remote(cube, user.pk)[0]["full_name"] == "Erin"

    user.first_name = "Erin B."
    user.save()
    wait_until(lambda: remote(cube, user.pk)[0]["full_name"] == "Erin B.")

    user.avatar.save("erin.png", ContentFile(PNG), save=True)
    link = wait_until(lambda: CubeUser.objects.filter(user=user).exclude(avatar_uid="").first())
    wait_until(lambda: remote(cube, user.pk)[0]["avatar"] == link.avatar_uid)
    assert json.loads(remote(cube, user.pk)[0]["custom_data"])["avatar_uid"] == link.avatar_uid
    assert cube.get_blob_data(link.avatar_uid) == PNG

    pk, external_id = user.pk, external_id_of(user.pk)
    user.delete()
    wait_until(lambda: CubeUser.objects.get(external_id=external_id).state == "deleted")
    assert remote(cube, pk, external_id) == []


def test_a_burst_of_saves_reaches_the_workers_in_batches(cube, worker):
    users = [User.objects.create(username=f"burst{i}") for i in range(12)]
    for user in users[:6]:  # again, while the first batch may still be waiting to go out
        user.first_name = "Again"
        user.save()
    for user in users:
        wait_until(lambda user=user: synced(user.pk))
    assert sorted(u["login"] for u in cube.users) == sorted(u.username for u in users)
    assert all(remote(cube, u.pk)[0]["full_name"] == "Again" for u in users[:6])


def test_rollback_sends_nothing(cube, worker):
    with pytest.raises(RuntimeError), transaction.atomic():
        User.objects.create(username="rolled")
        raise RuntimeError("rollback")
    committed = User.objects.create(username="after")
    wait_until(lambda: synced(committed.pk))
    assert [u["login"] for u in cube.users] == ["after"]


def test_broker_down_at_commit_is_synced_by_the_sweep(cube, worker, monkeypatch, caplog):
    from tests.celery import app

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patch:
        patch.setattr(app.amqp, "send_task_message", broker_down)
        user = User.objects.create(username="offline")  # the save itself succeeds
        assert enqueue.flush()  # the background publisher tries (and fails) while Redis is "down"
    assert "sweep will push it" in caplog.text
    link = CubeUser.objects.get(user=user)
    assert link.state == "pending" and link.enqueued_at is None
    assert cube.users == []
    assert enqueue.sweep() == 1  # broker back: what beat runs every minute
    wait_until(lambda: synced(user.pk))
    assert len(remote(cube, user.pk)) == 1


def test_task_delivered_twice_makes_one_remote_user(cube, worker):
    from django_connectycube.sync import tasks

    user = User.objects.create(username="twice")
    for _ in range(3):  # redelivered copies of the same message
        tasks.push_user.apply_async((user.pk,), queue=worker.queue)
    wait_until(lambda: synced(user.pk))
    wait_until(lambda: not CubeUser.objects.filter(user=user, lease_until__isnull=False).exists())
    assert len(remote(cube, user.pk)) == 1
    assert cube.request_count("POST /users") == 1


def test_worker_killed_mid_task_finishes_after_redelivery(cube, worker, beat):
    cube.set_fault("POST /users", latency=3.0, count=1)
    user = User.objects.create(username="survivor")
    wait_until(lambda: cube.request_count("POST /users") >= 1, timeout=15)
    assert worker.kill_children() >= 1  # SIGKILL while the create is in flight
    link = wait_until(lambda: synced(user.pk), timeout=60)
    assert len(remote(cube, user.pk)) == 1
    assert link.cube_id == remote(cube, user.pk)[0]["id"]


def test_5xx_and_429_bursts_converge(cube, worker, beat):
    cube.set_fault("*", error_rate=0.4, statuses=[500, 503], seed=7)
    cube.set_fault("*", rate_limit_rate=0.2, retry_after=1, seed=8)
    users = [User.objects.create(username=f"burst{i}") for i in range(8)]
    for user in users[:4]:
        user.first_name = "Updated"
        user.save()
    wait_until(lambda: all(synced(u.pk) for u in users), timeout=90, interval=0.5)
    cube.clear_faults()
    for user in users:
        assert len(remote(cube, user.pk)) == 1
    assert {remote(cube, u.pk)[0]["full_name"] for u in users[:4]} == {"Updated"}


def test_validation_error_marks_failed_with_the_message(cube, worker):
    user = User.objects.create(username="sixtags", tags="a,b,c,d,e,f")
    link = wait_until(
        lambda: CubeUser.objects.filter(user=user, state="failed").first(), timeout=30
    )
    assert "ConnectyCube rejected" in link.last_error
    assert link.attempts == 1  # permanent: no retries
    assert remote(cube, user.pk) == []
