"""Admin: where an operator sees what is mirrored, what failed and why, and re-syncs it."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_connectycube.admin.changelist import (
    MAX_PAGE,
    OLDER_THAN,
    KeysetChangeList,
    refuse_deep_page,
    search,
)
from django_connectycube.admin.counts import BoundedCountPaginator
from django_connectycube.admin.health import sync_health_view
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sync import enqueue

REMOTE_FIELDS = (
    "cube_id",
    "external_id",
    "login",
    "withheld",
    "dirty_version",
    "synced_version",
    "password_version",
    "avatar_uid",
    "avatar_digest",
    "attempts",
    "last_error",
    "failing_since",
    "next_attempt_at",
    "enqueued_at",
    "lease_until",
    "last_synced_at",
    "created_at",
    "updated_at",
)


def resync(links: QuerySet[CubeUser]) -> int:
    """Make rows owed again (failed ones included) and enqueue them after commit.

    The fields are pushed again even when they did not change locally: a re-sync checks the
    remote user (and re-creates it when ConnectyCube forgot it), it does not trust the digest.
    """
    rows = list(links.exclude(state=CubeUser.State.DELETED).values_list("pk", "user_id"))
    CubeUser.objects.filter(pk__in=[pk for pk, _ in rows]).resync(timezone.now())
    for pk, user_id in rows:
        if user_id is None:
            transaction.on_commit(lambda pk=pk: enqueue.enqueue_delete(pk))
        else:
            transaction.on_commit(lambda user_id=user_id: enqueue.enqueue_push(user_id))  # type: ignore[misc]  # a lambda's bound default
    return len(rows)


@admin.register(CubeUser)
class CubeUserAdmin(admin.ModelAdmin):
    # The external id is the row's link: short, and unlike __str__ it repeats no other column.
    list_display = (
        "external_id",
        "user",
        "cube_id",
        "state",
        "dirty_version",
        "synced_version",
        "attempts",
        "short_error",
        "next_attempt_at",
        "last_synced_at",
    )
    list_filter = ("state",)
    # Read by get_search_results as prefixes and an exact id, which indexes serve.
    search_fields = ("login", "external_id", "=cube_id")
    search_help_text = _(
        "The start of a ConnectyCube login or external id (case matters), or a ConnectyCube id."
    )
    list_select_related = ("user",)  # one join for the page's rows, not a query per row
    readonly_fields = ("user", "state", *REMOTE_FIELDS)
    actions = ("resync_selected",)
    # Newest links first, by primary key: the page is read from an index, whatever the table's
    # size (an order by a column without an index sorts the whole table for every page).
    ordering = ("-pk",)
    # Counts read at most admin_counts.CAP rows; the unfiltered total is not counted again.
    paginator = BoundedCountPaginator
    show_full_result_count = False
    #: The deepest page by number: page p reads and skips (p - 1) pages of rows, so deeper
    #: rows are reached by key (the "older" link), a search or a filter.
    max_page = MAX_PAGE

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows are created by saving users

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(partial(sync_health_view, self))
        health = path("sync-health/", view, name="django_connectycube_cubeuser_sync_health")
        return [health, *super().get_urls()]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return KeysetChangeList

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        refused = refuse_deep_page(self, request)
        return refused or super().changelist_view(request, extra_context)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[CubeUser], search_term: str
    ) -> tuple[QuerySet[CubeUser], bool]:
        return search(queryset, search_term), False

    def lookup_allowed(self, lookup: str, value: Any, request: Any = None) -> bool:
        if lookup in ("last_error__startswith", OLDER_THAN):
            # The sync-health page links failures by reason; "older" pages by key.
            return True
        args = (lookup, value) if request is None else (lookup, value, request)
        return super().lookup_allowed(*args)  # Django 4.2 takes no request

    @admin.display(description=_("last error"))
    def short_error(self, obj: CubeUser) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.action(description=_("Re-sync selected users to ConnectyCube"))
    def resync_selected(self, request: HttpRequest, queryset: QuerySet[CubeUser]) -> None:
        count = resync(queryset)
        self.message_user(
            request,
            ngettext("%d user queued for sync.", "%d users queued for sync.", count) % count,
            messages.SUCCESS,
        )


@admin.register(CubeSession)
class CubeSessionAdmin(admin.ModelAdmin):
    """Sessions are shown without their tokens; deleting a row forces a new login."""

    list_display = ("user", "cube_user_id", "created_at", "last_used_at", "expires_at")
    fields = ("user", "cube_user_id", "created_at", "last_used_at", "expires_at")
    readonly_fields = fields
    search_fields = ("=cube_user_id",)
    list_select_related = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CubeUserInline(admin.StackedInline):
    """A read-only summary of the user's ConnectyCube link, on the user's own admin page."""

    model = CubeUser
    fk_name = "user"
    can_delete = False
    extra = 0
    max_num = 0
    fields = ("cube_id", "login", "state", "synced_version", "last_synced_at", "last_error")
    readonly_fields = fields
    verbose_name_plural = _("ConnectyCube")


def add_inline_to_user_admin() -> None:
    """Attach the inline to whatever admin the project registered for its user model.

    Called from ``AppConfig.ready()``, after the admin has imported every app's admin module.
    """
    user_model = get_user_model()
    model_admin = admin.site._registry.get(user_model)
    if model_admin is None or CubeUserInline in model_admin.inlines:
        return
    model_admin.inlines = [*model_admin.inlines, CubeUserInline]  # type: ignore[misc]
