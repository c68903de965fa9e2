"""The link changelist at millions of rows: searches an index serves, pages by key past a bound.

Django's admin search is a case-insensitive infix match (``UPPER(col) LIKE '%term%'``), which no
index serves: every search reads the whole table. Here a term is a prefix of the login or the
external id (``varchar_pattern_ops`` indexes serve both on PostgreSQL) or, when it is digits, the
exact ConnectyCube id. A page by number skips its offset row by row, so numbered pages stop at
the admin's ``max_page``; beyond it an "older" link filters on the primary key instead
(``?id__lt=<the page's oldest>``), which reads the next page from the index wherever it is.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.translation import gettext as _

__all__ = ["MAX_PAGE", "OLDER_THAN", "KeysetChangeList", "refuse_deep_page", "search"]

#: The deepest page by number (100 rows a page: at most 1,900 rows skipped).
MAX_PAGE = 20
#: The "older" link's filter: rows before the primary key the query string names.
OLDER_THAN = "id__lt"


def search(queryset: QuerySet[Any], term: str) -> QuerySet[Any]:
    """Rows whose login or external id starts with ``term``, or whose ConnectyCube id it is."""
    term = term.strip()
    if not term:
        return queryset
    match = Q(login__startswith=term) | Q(external_id__startswith=term)
    if term.isdigit() and len(term) <= 19:  # a PositiveBigIntegerField holds 19 digits
        match |= Q(cube_id=int(term))
    return queryset.filter(match)


def refuse_deep_page(model_admin: Any, request: HttpRequest) -> HttpResponseRedirect | None:
    """A redirect to the first page, with a message saying why, for a page past the bound."""
    try:
        number = int(request.GET.get(PAGE_VAR, 1))
    except ValueError:
        return None  # the changelist's own error for a page that is not a number
    if number <= model_admin.max_page:
        return None
    messages.warning(
        request,
        _(
            "Page %(page)d is not shown: pages by number stop at %(max)d, since each one reads "
            "all the rows before it. Follow the \u201colder\u201d link at the foot of the list, "
            "or narrow it with a search or a filter."
        )
        % {"page": number, "max": model_admin.max_page},
    )
    query = request.GET.copy()
    query.pop(PAGE_VAR, None)
    return HttpResponseRedirect(f"{request.path}?{query.urlencode()}" if query else request.path)


class KeysetChangeList(ChangeList):
    """A changelist that knows the link to the rows older than its page."""

    @cached_property
    def older_query(self) -> str:
        """The query string of the next older rows ("" on the last page): the page's oldest
        primary key as a filter, page one, the search and other filters kept."""
        rows = list(self.result_list)
        if not rows:
            return ""
        oldest = min(row.pk for row in rows)
        # The next older key, read backwards from the primary key's index: one row.
        if not self.queryset.filter(pk__lt=oldest).order_by("-pk").values_list("pk")[:1]:
            return ""
        return str(self.get_query_string({OLDER_THAN: oldest}, [PAGE_VAR]))
