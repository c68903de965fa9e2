"""The admin on a big table: the changelist and the sync-health page read a bounded number of
rows, whatever the number of users (``python -m benchmarks.db_scale`` times them at a million)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_connectycube.admin import counts as admin_counts
from django_connectycube.admin.counts import BoundedCount, bounded_count
from django_connectycube.models import CubeUser

pytestmark = pytest.mark.django_db
CUBE = CubeUser._meta.db_table
CHANGELIST = "admin:django_connectycube_cubeuser_changelist"
HEALTH = "admin:django_connectycube_cubeuser_sync_health"


@pytest.fixture
def staff_client(admin_client):
    CubeUser.objects.all().delete()  # the admin's own link
    return admin_client


@pytest.fixture
def cap(monkeypatch):
    monkeypatch.setattr(admin_counts, "CAP", 5)
    return 5


def links(state, n):
    CubeUser.objects.bulk_create(
        CubeUser(external_id=f"{state}-{i}", state=state) for i in range(n)
    )


def get_counting(client, url, **params):
    """The page, and every statement that read it, after checking that each count of links
    is bounded."""
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse(url), params)
    counts = [q["sql"] for q in queries if CUBE in q["sql"] and "COUNT(" in q["sql"]]
    assert counts and all("LIMIT" in sql for sql in counts), counts
    return page, [q["sql"] for q in queries]


def beyond(count, cap):
    return str(count) == f"more than {cap}" or str(count).startswith("about ")


def test_a_bounded_count_is_exact_up_to_the_cap_and_says_so_beyond():
    links("synced", 7)
    assert bounded_count(CubeUser.objects.all(), 7) == BoundedCount(7)
    assert str(bounded_count(CubeUser.objects.all(), 7)) == "7"
    assert beyond(bounded_count(CubeUser.objects.all(), 6), 6)
    assert BoundedCount(2) + BoundedCount(3) == BoundedCount(5)
    assert str(BoundedCount(2) + BoundedCount(6, exact=False)) == "more than 8"


def test_the_changelist_counts_at_most_cap_rows(staff_client, cap):
    # It counted the whole table, twice (the page's count and the unfiltered total).
    links("synced", 8)
    links("failed", 2)
    page, _ = get_counting(staff_client, CHANGELIST)
    assert beyond(page.context["cl"].paginator.bounded, cap)
    assert "10 ConnectyCube users" not in page.content.decode()
    failed, _ = get_counting(staff_client, CHANGELIST, state="failed")
    assert failed.context["cl"].result_count == 2
    assert "2 ConnectyCube users" in failed.content.decode()


def test_the_health_page_counts_at_most_cap_rows_of_each_state(staff_client, cap):
    # It grouped the whole table by state.
    links("synced", 8)
    links("pending", 2)
    links("failed", 1)
    page, queries = get_counting(staff_client, HEALTH)
    assert not [sql for sql in queries if "GROUP BY" in sql]
    states = {row["state"]: row for row in page.context["states"]}
    assert (states["pending"]["count"], states["failed"]["count"]) == (2, 1)
    assert beyond(states["synced"]["shown"], cap)
    total = str(page.context["total"])
    assert total == "more than 8" or total.startswith("about "), total
    assert str(states["synced"]["shown"]) in page.content.decode()


def test_the_doctor_counts_at_most_cap_rows_of_each_state(cap):
    # connectycube_doctor grouped the whole table by state.
    from django_connectycube.checks.doctor.context import DoctorContext
    from django_connectycube.checks.doctor.sync_health import check_sync_health

    CubeUser.objects.all().delete()
    links("synced", 8)
    links("failed", 2)
    with CaptureQueriesContext(connection) as queries:
        finding = check_sync_health(DoctorContext())
    sql = [q["sql"] for q in queries]
    assert not [s for s in sql if "GROUP BY" in s]
    assert all("LIMIT" in s for s in sql if "COUNT(" in s)
    assert (finding.details["failed"], finding.details["owed"]) == (2, 0)
    assert finding.details["states"]["failed"] == 2
    assert finding.message.startswith(("more than 7 link(s);", "about ")), finding.message


@pytest.mark.integration
def test_the_changelist_page_is_read_in_index_order_on_postgresql(postgres_db, staff_client):
    # It sorted the whole table by a column without an index for every page.
    links("synced", 150)
    cl = staff_client.get(reverse(CHANGELIST)).context["cl"]
    sql, params = cl.result_list.query.sql_with_params()
    with connection.cursor() as cursor:
        # Where an index gives the order, the planner can do without sorting; else it must sort.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Sort" not in plan, plan
