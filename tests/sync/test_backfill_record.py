"""The backfill's one ``UPDATE`` per chunk writes each link's own values, whatever the column
type: runs on SQLite here and on PostgreSQL in the integration run."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_connectycube.models import CubeUser
from django_connectycube.sync import backfill, lease

pytestmark = pytest.mark.django_db
User = get_user_model()


def _done(link, **values):
    for name, value in values.items():
        setattr(link, name, value)
    return backfill._Done(
        link=link, version=link.dirty_version, digest=f"d-{link.pk}", outcome="created"
    )


def test_one_update_writes_every_link_its_own_values():
    users = [User.objects.create(username=f"rec{i}") for i in range(3)]
    links = list(CubeUser.objects.filter(user__in=users).order_by("pk"))
    items = [
        _done(links[0], cube_id=9001, login="rec0", withheld={"email": "taken"}),
        _done(links[1], cube_id=9002, login="rec1-b", withheld={}),
        _done(links[2], cube_id=9003, login="rec2", withheld={"phone": "1", "email": "x"}),
    ]
    token = timezone.now()
    CubeUser.objects.filter(pk__in=[link.pk for link in links]).update(lease_until=token)
    held = lease.Lease(Q(pk__in=[link.pk for link in links]), token, 60)
    batch = backfill.Batch(lease=held, links=links, others=[])
    with CaptureQueriesContext(connection) as queries:
        batch._write(items, links[0].dirty_version, links[0].password_version, timezone.now())
    assert len(queries) == 1
    stored = {
        row[0]: row[1:]
        for row in CubeUser.objects.filter(pk__in=[link.pk for link in links]).values_list(
            "pk", "cube_id", "login", "withheld", "pushed_digest", "lease_until", "state"
        )
    }
    expected = [
        (9001, "rec0", {"email": "taken"}),
        (9002, "rec1-b", {}),
        (9003, "rec2", {"phone": "1", "email": "x"}),
    ]
    assert stored == {
        link.pk: (*values, f"d-{link.pk}", None, "synced")
        for link, values in zip(links, expected, strict=True)
    }
