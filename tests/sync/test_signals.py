"""The save path: one small write in the transaction, an enqueue after commit, never HTTP."""

from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_connectycube.models import CubeUser, identity
from django_connectycube.sync import enqueue, policy, tasks, unlinked
from tests.messages import tasks_in

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def sent(monkeypatch):
    """Record what would be handed to Celery instead of sending it; a ``push_batch`` message is
    recorded as the tasks it stands for."""
    calls = []

    def fake_apply_async(self, args=(), kwargs=None, **options):
        calls.extend((name, str(arg)) for name, arg in tasks_in(self.name, args))

    monkeypatch.setattr("celery.app.task.Task.apply_async", fake_apply_async)
    return calls


def link_of(user):
    return CubeUser.objects.get(user=user)


def test_create_marks_dirty_and_enqueues_after_commit(django_capture_on_commit_callbacks, sent):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        user = User.objects.create(username="ann")
        link = link_of(user)
        assert (link.state, link.dirty_version, link.synced_version) == ("pending", 1, 0)
        assert identity.is_minted(link.external_id)  # never the bare pk
        assert link.external_id.startswith("dj-")
        assert sent == []  # nothing leaves before commit
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == [("push_user", str(user.pk))]


def test_rollback_sends_nothing_and_leaves_nothing(sent):
    with pytest.raises(RuntimeError), transaction.atomic():
        User.objects.create(username="ghost")
        raise RuntimeError
    assert sent == []
    assert not CubeUser.objects.exists()


def test_each_save_bumps_the_version(django_capture_on_commit_callbacks, sent):
    user = User.objects.create(username="bo")
    for i in range(3):
        user.first_name = f"Bo{i}"
        with django_capture_on_commit_callbacks(execute=True):
            user.save()
    assert link_of(user).dirty_version == 4
    assert sent.count(("push_user", str(user.pk))) == 3


def test_update_fields_without_mapped_field_is_not_a_change(
    django_capture_on_commit_callbacks, sent
):
    user = User.objects.create(username="cy")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        user.bio = "unmapped"
        user.save(update_fields=["bio", "last_login"])
    assert callbacks == []
    assert link_of(user).dirty_version == 1


def test_update_fields_with_mapped_field_is_a_change(django_capture_on_commit_callbacks, sent):
    user = User.objects.create(username="di")
    with django_capture_on_commit_callbacks(execute=True):
        user.email = "di@example.com"
        user.save(update_fields=["email"])
    assert link_of(user).dirty_version == 2
    assert sent == [("push_user", str(user.pk))]


def test_fixture_loads_are_skipped(tmp_path, sent):
    pk = User._meta.pk.to_python(User._meta.pk.get_default() or 99)
    fixture = tmp_path / "users.json"
    fixture.write_text(
        f'[{{"model": "{User._meta.label_lower}", "pk": "{pk}", '
        '"fields": {"username": "fixture", "password": ""}}]'
    )
    call_command("loaddata", str(fixture), verbosity=0)
    assert User.objects.filter(pk=pk).exists()
    assert not CubeUser.objects.exists()


def test_sync_disabled_records_nothing(settings, sent):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    User.objects.create(username="quiet")
    assert not CubeUser.objects.exists()


def test_save_of_existing_user_costs_one_update_query(django_capture_on_commit_callbacks, sent):
    user = User.objects.create(username="fast")
    user.first_name = "Fast"
    with CaptureQueriesContext(connection) as queries:
        user.save()
    ours = [q["sql"] for q in queries if CubeUser._meta.db_table in q["sql"]]
    assert len(ours) == 1
    assert ours[0].startswith("UPDATE")
    assert not [q for q in queries if "http" in q["sql"].lower()]


def test_broker_down_keeps_the_save_and_the_row_owed(
    monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def broken(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr("celery.app.task.Task.apply_async", broken)
    with django_capture_on_commit_callbacks(execute=True):
        user = User.objects.create(username="offline")
    link = link_of(user)
    assert link.state == "pending" and link.is_dirty
    assert link.enqueued_at is None  # visible to the sweep at once
    assert "sweep will push it" in caplog.text


def test_delete_writes_a_tombstone_and_enqueues_the_delete(
    django_capture_on_commit_callbacks, sent
):
    user = User.objects.create(username="gone")
    link_id, external_id = link_of(user).pk, link_of(user).external_id
    with django_capture_on_commit_callbacks(execute=True):
        user.delete()
    link = CubeUser.objects.get(pk=link_id)
    assert link.user_id is None
    assert link.state == "deleting"
    assert link.external_id == external_id
    assert sent == [("delete_remote_user", str(link_id))]


def test_delete_of_unlinked_user_enqueues_nothing(
    settings, django_capture_on_commit_callbacks, sent
):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    user = User.objects.create(username="never")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        user.delete()
    assert callbacks == []


def test_save_after_failure_makes_the_row_pending_again(sent):
    user = User.objects.create(username="retry")
    CubeUser.objects.filter(user=user).update(state="failed", attempts=8, last_error="boom")
    user.first_name = "Fixed"
    user.save()
    link = link_of(user)
    assert (link.state, link.attempts) == ("pending", 0)


def test_sweep_enqueues_owed_rows_not_in_flight(sent, settings):
    a = User.objects.create(username="a1")
    b = User.objects.create(username="b1")
    CubeUser.objects.filter(user=a).update(enqueued_at=None)  # enqueue was lost
    sent.clear()
    assert enqueue.sweep() == 1
    assert sent == [("push_user", str(a.pk))]
    # b was enqueued just now: in flight, left alone until SWEEP_AFTER passes.
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SWEEP_AFTER": 0}
    sent.clear()
    assert enqueue.sweep() == 2
    assert sorted(sent) == sorted([("push_user", str(a.pk)), ("push_user", str(b.pk))])


def test_sweep_links_a_user_saved_while_sync_was_off(settings, sent):
    # It used to leave them to the sync command: an outer join of the whole user table was too
    # much for every minute. It reads a window of the table's primary key instead.
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    legacy = User.objects.create(username="legacy")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    with CaptureQueriesContext(connection) as queries:
        assert enqueue.sweep() == 1
    assert sent == [("push_user", str(legacy.pk))]
    on_users = [q["sql"] for q in queries if User._meta.db_table in q["sql"]]
    assert on_users and not [sql for sql in on_users if "LEFT OUTER JOIN" in sql]
    assert unlinked.link_all() == 0


def test_sweep_sends_nothing_while_sync_is_disabled(settings, sent):
    user = User.objects.create(username="off")
    CubeUser.objects.filter(user=user).update(enqueued_at=None)
    sent.clear()
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    assert enqueue.sweep() == 0
    assert sent == []
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    assert enqueue.sweep() == 1


def test_sweep_sends_deletes_for_tombstones(sent, django_capture_on_commit_callbacks):
    user = User.objects.create(username="tomb")
    link_id = link_of(user).pk
    user.delete()  # no commit callbacks run: the enqueue is "lost"
    CubeUser.objects.filter(pk=link_id).update(enqueued_at=None)
    sent.clear()
    assert enqueue.sweep() == 1
    assert sent == [("delete_remote_user", str(link_id))]


def test_tasks_are_registered_with_reliable_options():
    for task in (tasks.push_user, tasks.delete_remote_user):
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
    assert tasks.push_user.name == "django_connectycube.push_user"


def test_backoff_is_capped_full_jitter(settings):
    # The longest wait is a 72nd of the horizon: 10 s of 720 s.
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRY_HORIZON": 720}
    waits = [policy.backoff(n) for n in range(1, 12) for _ in range(20)]
    assert all(0 <= w <= 10.0 for w in waits)
    assert max(policy.backoff(10) for _ in range(50)) > 2.0  # grows past the base


def test_enqueue_arg_for_uuid_pk_is_a_string():
    import uuid

    pk = uuid.uuid4()
    with mock.patch.object(tasks.push_user, "apply_async") as apply_async:
        enqueue.enqueue_push(pk)
    apply_async.assert_called_once_with((str(pk),))
