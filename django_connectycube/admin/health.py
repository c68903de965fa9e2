"""The admin's sync-health page: what an operator looks at before querying the table by hand.

Each state's count reads at most :data:`.admin_counts.CAP` rows (beyond that it is an estimate);
everything else reads only the owed and failed rows (the rows an operator must act on), never
the whole table.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Min
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from django_connectycube.admin.counts import BoundedCount, bounded_count
from django_connectycube.models import CubeUser
from django_connectycube.sync import verification

__all__ = ["failure_reason", "sync_health_context", "sync_health_view"]

#: Longest reason shown (and filtered on); the rest of a message is the row's own detail.
REASON_LENGTH = 120


def failure_reason(last_error: str) -> str:
    """A failure's kind: the error up to its first ``:`` (messages name the kind first)."""
    return last_error.split(":", 1)[0].strip()[:REASON_LENGTH] or "(no error recorded)"


def _changelist(**filters: str) -> str:
    url = reverse("admin:django_connectycube_cubeuser_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def sync_health_context() -> dict[str, Any]:
    """States with counts, the oldest owed change, failures grouped by reason, each linked, and
    the drift the verification found (:mod:`.verification`)."""
    counts = {
        state: bounded_count(CubeUser.objects.filter(state=state))
        for state, _ in CubeUser.State.choices
    }
    states = [
        {
            "state": state,
            "label": label,
            "count": counts[state].value,
            "shown": counts[state],
            "url": _changelist(state=state),
        }
        for state, label in CubeUser.State.choices
    ]
    oldest = CubeUser.objects.owed().aggregate(oldest=Min("updated_at"))["oldest"]
    oldest_link = None
    age: timedelta | None = None
    if oldest is not None:
        age = timezone.now() - oldest
        pk = CubeUser.objects.owed().filter(updated_at=oldest).values_list("pk", flat=True)[0]
        oldest_link = reverse("admin:django_connectycube_cubeuser_change", args=[pk])
    reasons = Counter(
        failure_reason(error)
        for error in CubeUser.objects.filter(state=CubeUser.State.FAILED)
        .values_list("last_error", flat=True)
        .iterator()
    )
    failures = [
        {
            "reason": reason,
            "count": n,
            "url": _changelist(state=CubeUser.State.FAILED, last_error__startswith=reason)
            if not reason.startswith("(")
            else _changelist(state=CubeUser.State.FAILED),
        }
        for reason, n in reasons.most_common()
    ]
    scan = verification.last_run()
    return {
        "drift_count": bounded_count(verification.drifted()),
        "drift_url": _changelist(drift_found_at__isnull="False"),
        "last_verification": scan.last_run_at if scan is not None else None,
        "last_full_pass": scan.last_pass_at if scan is not None else None,
        "states": states,
        "total": sum(counts.values(), BoundedCount(0)),
        "oldest_owed_age": age,
        "oldest_owed_url": oldest_link,
        "failures": failures,
        "changelist_url": _changelist(),
    }


def sync_health_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """The page itself, inside the admin's layout and permissions."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "ConnectyCube sync health",
        **sync_health_context(),
    }
    return TemplateResponse(request, "admin/django_connectycube/cubeuser/sync_health.html", context)
