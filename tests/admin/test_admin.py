import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from django_connectycube.admin import CubeUserInline
from django_connectycube.models import CubeSession, CubeUser

pytestmark = pytest.mark.django_db
User = get_user_model()
TOKEN = "plain-token-must-not-show-0123456789"


@pytest.fixture
def staff_client(client, monkeypatch):
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda *a, **k: None)
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    return client


def test_changelist_shows_state_and_filters(staff_client):
    user = User.objects.create(username="listed")
    CubeUser.objects.filter(user=user).update(state="failed", last_error="422 login taken")
    url = reverse("admin:django_connectycube_cubeuser_changelist")
    page = staff_client.get(url, {"state": "failed"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "422 login taken" in body
    assert "listed" in body
    assert "root" not in body.split("result_list")[-1]  # filtered out: root is pending


def test_resync_action_requeues_failed_rows(staff_client, django_capture_on_commit_callbacks):
    user = User.objects.create(username="stuck")
    link = CubeUser.objects.get(user=user)
    CubeUser.objects.filter(pk=link.pk).update(state="failed", attempts=8)
    url = reverse("admin:django_connectycube_cubeuser_changelist")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post(
            url, {"action": "resync_selected", "_selected_action": [link.pk]}, follow=True
        )
    assert response.status_code == 200
    link.refresh_from_db()
    assert (link.state, link.attempts) == ("pending", 0)
    assert len(callbacks) == 1


def test_resync_of_failed_tombstone_goes_back_to_deleting(staff_client):
    user = User.objects.create(username="tomb2")
    link = CubeUser.objects.get(user=user)
    user.delete()
    CubeUser.objects.filter(pk=link.pk).update(state="failed")
    staff_client.post(
        reverse("admin:django_connectycube_cubeuser_changelist"),
        {"action": "resync_selected", "_selected_action": [link.pk]},
    )
    link.refresh_from_db()
    assert link.state == "deleting"


def test_change_page_is_read_only(staff_client):
    user = User.objects.create(username="ro")
    link = CubeUser.objects.get(user=user)
    url = reverse("admin:django_connectycube_cubeuser_change", args=[link.pk])
    page = staff_client.get(url)
    assert page.status_code == 200
    assert 'name="cube_id"' not in page.content.decode()


def test_session_admin_never_shows_the_token(staff_client):
    user = User.objects.create(username="tokenholder")
    session = CubeSession.objects.create(user=user, token=TOKEN)
    for url in (
        reverse("admin:django_connectycube_cubesession_changelist"),
        reverse("admin:django_connectycube_cubesession_change", args=[session.pk]),
    ):
        page = staff_client.get(url)
        assert page.status_code == 200
        assert TOKEN not in page.content.decode()


def test_user_admin_has_the_connectycube_inline(staff_client):
    from django.contrib import admin

    assert CubeUserInline in admin.site._registry[User].inlines
    user = User.objects.create(username="inline")
    page = staff_client.get(reverse("admin:testapp_user_change", args=[user.pk]))
    assert page.status_code == 200
    assert "ConnectyCube" in page.content.decode()
