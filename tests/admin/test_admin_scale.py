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


# ---- search and deep pages -----------------------------------------------------------------


def named_links(*rows):
    return CubeUser.objects.bulk_create(
        CubeUser(login=login, external_id=external_id, cube_id=cube_id, state="synced")
        for login, external_id, cube_id in rows
    )


def shown(page) -> set[str]:
    return {link.external_id for link in page.context["cl"].result_list}


def test_search_is_by_prefix_or_exact_id_which_an_index_serves(staff_client):
    # It was a case-insensitive infix match of every row (UPPER(..) LIKE '%..%').
    named_links(
        ("alice", "ext-a", 11),
        ("malice", "ext-m", 12),
        ("bob", "abc-7", 4711),
        ("carl", "4711x", 5),
    )
    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get(reverse(CHANGELIST), {"q": "alic"})
    assert shown(page) == {"ext-a"}
    assert not [q["sql"] for q in queries if "UPPER(" in q["sql"] or "%alic%" in str(q)]
    assert shown(staff_client.get(reverse(CHANGELIST), {"q": "abc"})) == {"abc-7"}
    # Digits: the exact ConnectyCube id, or a login or external id starting with them.
    assert shown(staff_client.get(reverse(CHANGELIST), {"q": "4711"})) == {"abc-7", "4711x"}
    assert shown(staff_client.get(reverse(CHANGELIST), {"q": "  bob "})) == {"abc-7"}


def test_the_first_column_is_a_short_link_not_the_row_repeated(staff_client):
    # __str__ ("login → id (state)") repeated the next three columns and cut the page at 1280 px.
    named_links(("alice", "ext-a", 11))
    page = staff_client.get(reverse(CHANGELIST))
    table = page.content.decode().split('id="result_list"')[1].split("</table>")[0]
    assert "field-__str__" not in table
    assert '<th class="field-external_id"><a href=' in table and ">ext-a</a></th>" in table


@pytest.fixture
def small_pages(monkeypatch):
    """Two rows a page and pages up to the third, so a handful of rows shows the bound."""
    from django_connectycube.admin import CubeUserAdmin

    monkeypatch.setattr(CubeUserAdmin, "list_per_page", 2)
    monkeypatch.setattr(CubeUserAdmin, "max_page", 3)
    named_links(*((f"user{i}", f"ext-{i:02}", 100 + i) for i in range(11)))
    return sorted(CubeUser.objects.values_list("pk", flat=True), reverse=True)


def test_a_page_beyond_the_bound_is_refused_with_a_clear_message(staff_client, small_pages):
    # Page p read and joined (p - 1) x 100 rows to skip them: 38k buffers at page 90.
    assert len(shown(staff_client.get(reverse(CHANGELIST), {"p": "3"}))) == 2
    refused = staff_client.get(reverse(CHANGELIST), {"p": "4", "state": "synced"}, follow=True)
    assert refused.status_code == 200
    [message] = [str(m) for m in refused.context["messages"]]
    assert "page 4" in message.lower() and "older" in message.lower()
    assert refused.redirect_chain[-1][0].endswith("?state=synced")
    assert shown(refused) == {"ext-10", "ext-09"}


def test_older_links_page_deep_by_key_not_by_offset(staff_client, small_pages):
    page = staff_client.get(reverse(CHANGELIST), {"p": "3"})
    older = page.context["cl"].older_query
    assert older == f"?id__lt={small_pages[5]}"
    assert f'href="{older}"' in page.content.decode().replace("&amp;", "&")
    deeper = staff_client.get(reverse(CHANGELIST) + older)
    assert shown(deeper) == {"ext-04", "ext-03"}
    while deeper.context["cl"].older_query:
        deeper = staff_client.get(reverse(CHANGELIST) + deeper.context["cl"].older_query)
    assert shown(deeper) == {"ext-00"}
    filtered = staff_client.get(reverse(CHANGELIST), {"q": "user", "p": "2"})
    assert "q=user" in filtered.context["cl"].older_query


@pytest.mark.integration
@pytest.mark.parametrize("term", ["alic", "4711"])
def test_a_search_is_read_from_an_index_on_postgresql(postgres_db, staff_client, term):
    named_links(("alice", "ext-a", 11), ("bob", "abc-7", 4711))
    cl = staff_client.get(reverse(CHANGELIST), {"q": term}).context["cl"]
    sql, params = cl.result_list.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Not a walk of the whole table, in any order: each term is looked up in an index.
    assert f"Seq Scan on {CUBE}" not in plan, plan
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert any(column in line for line in conditions for column in ("login", "cube_id")), plan
    assert "'%" not in plan and "upper(" not in plan, plan
