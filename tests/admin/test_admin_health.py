"""The admin's sync-health page: counts by state, the oldest owed change, failures by reason."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_connectycube.admin.health import failure_reason
from django_connectycube.models import CubeUser

pytestmark = pytest.mark.django_db
User = get_user_model()
HEALTH = "admin:django_connectycube_cubeuser_sync_health"


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    CubeUser.objects.all().delete()  # root's own link
    return client


def link(state, error="", age=timedelta(0)):
    row = CubeUser.objects.create(
        external_id=f"h-{CubeUser.objects.count()}", state=state, last_error=error
    )
    CubeUser.objects.filter(pk=row.pk).update(updated_at=timezone.now() - age)
    return row


def test_reason_is_the_error_up_to_its_first_colon():
    assert failure_reason("ConnectyCube rejected the user's data: login taken") == (
        "ConnectyCube rejected the user's data"
    )
    assert failure_reason("") == "(no error recorded)"


def test_the_changelist_links_to_the_health_page(staff_client):
    page = staff_client.get(reverse("admin:django_connectycube_cubeuser_changelist"))
    assert reverse(HEALTH) in page.content.decode()


def test_health_page_counts_ages_and_groups_failures_with_links(staff_client):
    link("synced")
    link("synced")
    oldest = link("pending", age=timedelta(hours=2))
    link("deleting", age=timedelta(minutes=5))
    link("failed", "ConnectyCube rejected the user's data: login taken")
    link("failed", "ConnectyCube rejected the user's data: email invalid")
    link("failed", "refused the derived password: 401")
    page = staff_client.get(reverse(HEALTH))
    assert page.status_code == 200
    context = page.context
    counts = {s["state"]: s["count"] for s in context["states"]}
    assert counts == {"pending": 1, "synced": 2, "deleting": 1, "deleted": 0, "failed": 3}
    assert (
        timedelta(hours=1, minutes=59) < context["oldest_owed_age"] < timedelta(hours=2, minutes=1)
    )
    assert context["oldest_owed_url"] == reverse(
        "admin:django_connectycube_cubeuser_change", args=[oldest.pk]
    )
    assert [(f["reason"], f["count"]) for f in context["failures"]] == [
        ("ConnectyCube rejected the user's data", 2),
        ("refused the derived password", 1),
    ]
    # Each reason's link is a changelist filter the admin accepts, showing exactly those rows.
    listed = staff_client.get(context["failures"][0]["url"])
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 2


def test_health_page_reads_only_owed_and_failed_rows(staff_client):
    for _ in range(5):
        link("synced")
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(reverse(HEALTH))
    cube_queries = [q["sql"] for q in queries if "django_connectycube_cubeuser" in q["sql"]]
    # A bounded count per state (test_admin_scale), the oldest owed row, the failed rows, and
    # a bounded count of the drifted rows (on the drift_found_at index).
    assert len(cube_queries) == len(CubeUser.State.choices) + 3
    assert any("drift_found_at" in sql for sql in cube_queries)
    assert all("WHERE" in sql for sql in cube_queries)


def test_health_page_needs_staff(client):
    page = client.get(reverse(HEALTH))
    assert page.status_code == 302
    assert "/login/" in page["Location"]


def test_health_page_shows_drift_and_the_last_verification(staff_client):
    from django_connectycube.models import DriftScan

    page = staff_client.get(reverse(HEALTH)).content.decode()
    assert 'id="sync-drift-count">0<' in page and "Last verification: never" in page
    drifted = User.objects.create(username="drifted")  # its link is made by the save
    CubeUser.objects.filter(user=drifted).update(drift_found_at=timezone.now())
    DriftScan.objects.create(pk=1, last_run_at=timezone.now() - timedelta(minutes=5))
    page = staff_client.get(reverse(HEALTH)).content.decode()
    assert 'id="sync-drift-count">1<' in page
    assert "Last verification: 5\xa0minutes ago" in page
    assert "connectycube_sync --repair" in page
