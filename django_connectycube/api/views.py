"""The REST API a frontend calls: a ConnectyCube session for the logged-in user, user look-ups,
password reset.

Every view answers errors as ``{"detail": ..., "code": ...}``. ConnectyCube being slow, down or
rate limiting never turns into a 500: it is a 503 with ``Retry-After`` and the code
``connectycube_unavailable``; an account the sync cannot set up without an operator (a recorded
conflict, a dead letter) is a 409 ``connectycube_conflict``. Tokens appear only in the answers of
the login and session views, and only the requester's own.

The views live in one module per endpoint group (:mod:`.login`, :mod:`.reset`, the look-ups
here); this module keeps every view importable from ``django_connectycube.api.views``.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from django_connectycube.api.base import ConnectyCubeAPIView
from django_connectycube.api.errors import error_response as _error
from django_connectycube.api.login import LoginView, LogoutView, SessionResponseMixin, SessionView
from django_connectycube.api.openapi import OpenApiResponse, extend_schema
from django_connectycube.api.reset import PasswordResetView
from django_connectycube.api.serializers import (
    PREFIX_RESULTS,
    ErrorSerializer,
    ProfilePageSerializer,
    ProfileSerializer,
    UserQuerySerializer,
)
from django_connectycube.api.throttling import LookupThrottle
from django_connectycube.client import ConnectyCubeClient, NotFound, Page, User, ValidationError
from django_connectycube.conf import app_settings
from django_connectycube.models import CubeUser
from django_connectycube.sync.connection import shared_client

__all__ = [
    "ConnectyCubeAPIView",
    "LoginView",
    "LogoutView",
    "PasswordResetView",
    "SessionResponseMixin",
    "SessionView",
    "UserDetailView",
    "UserListView",
]


#: Look-ups that would confirm someone's e-mail address or phone number.
CONTACT_FILTERS = frozenset({"email", "phone"})


def contact_lookups_allowed() -> bool:
    """Whether ``API_CONTACT_FIELDS`` lets users find others by e-mail or phone ("searchable",
    "public"): by default an address profiles do not show cannot be confirmed by a search."""
    return app_settings.API_CONTACT_FIELDS in ("searchable", "public")


class ProfileMixin:
    """Serializes ConnectyCube users as public profiles for this request's user."""

    request: Request
    connectycube_throttle_classes = [LookupThrottle]

    def profile_context(self, users: list[User]) -> dict[str, Any]:
        """The serializer's context for these users; their avatars are the blobs our links
        recorded, since each user can point their remote avatar at anything."""
        user = self.request.user
        own = None
        if user is not None and user.is_authenticated:
            own = CubeUser.objects.filter(user_id=user.pk).values_list("cube_id", flat=True).first()
        avatars = CubeUser.objects.filter(cube_id__in=[u.id for u in users]).exclude(avatar_uid="")
        return {
            "api_url": app_settings.API_URL,
            "own_cube_id": own,
            "expose_contact": app_settings.API_CONTACT_FIELDS == "public",
            "avatars": dict(avatars.values_list("cube_id", "avatar_uid")),
        }


class UserListView(ProfileMixin, ConnectyCubeAPIView):
    """``GET users/``: public profiles matching exactly one filter, one page at a time."""

    @extend_schema(
        operation_id="connectycube_users_list",
        parameters=[UserQuerySerializer],
        responses={
            200: ProfilePageSerializer,
            400: OpenApiResponse(description="Invalid or missing filter (field errors)."),
            401: OpenApiResponse(ErrorSerializer),
            403: OpenApiResponse(ErrorSerializer, description="E-mail/phone look-ups are off."),
            429: OpenApiResponse(ErrorSerializer, description="Throttled (Retry-After)."),
            503: OpenApiResponse(ErrorSerializer),
        },
    )
    def get(self, request: Request) -> Response:
        query = UserQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params["filter"] in CONTACT_FILTERS and not contact_lookups_allowed():
            return _error(
                _("Looking users up by e-mail or phone is turned off."),
                "contact_lookup_disabled",
                status.HTTP_403_FORBIDDEN,
            )
        page = self.fetch(shared_client(), params)
        context = self.profile_context(page.items)
        profiles = ProfileSerializer(page.items, many=True, context=context).data
        number, per_page = params["page"], params["per_page"]
        url = request.build_absolute_uri()
        has_next = number * per_page < page.total
        return Response(
            {
                "count": page.total,
                "next": replace_query_param(url, "page", number + 1) if has_next else None,
                "previous": replace_query_param(url, "page", number - 1) if number > 1 else None,
                "results": profiles,
            }
        )

    def fetch(self, client: ConnectyCubeClient, params: dict[str, Any]) -> Page[User]:
        """One page of ConnectyCube users for the validated query (app session: read-only)."""
        name = params["filter"]
        value = params[name]
        number, per_page = params["page"], params["per_page"]
        ordering: str = params["ordering"]
        descending, field = ordering.startswith("-"), ordering.lstrip("-")
        sort: dict[str, Any] = {"order_by": field, "descending": descending}
        if name == "ids":
            return client.get_users_by_ids(value, page=number, per_page=per_page, **sort)
        if name == "full_name":
            return client.get_users_by_full_name(value, page=number, per_page=per_page, **sort)
        if name == "tags":
            return client.get_users_by_tags(value, page=number, per_page=per_page, **sort)
        if name == "login_prefix":
            # ConnectyCube answers a start_with query with at most PREFIX_RESULTS users.
            return client.search_users(
                offset=(number - 1) * PREFIX_RESULTS,
                limit=min(per_page, PREFIX_RESULTS),
                **{"sort_desc" if descending else "sort_asc": field, "login__start_with": value},
            )
        # login, email, phone, external_id: one v2 query, paged like the others.
        return client.search_users(
            offset=(number - 1) * per_page,
            limit=per_page,
            **{"sort_desc" if descending else "sort_asc": field, name: value},
        )


class UserDetailView(ProfileMixin, ConnectyCubeAPIView):
    """``GET users/<id>/``: one public profile."""

    @extend_schema(
        operation_id="connectycube_users_retrieve",
        responses={
            200: ProfileSerializer,
            401: OpenApiResponse(ErrorSerializer),
            404: OpenApiResponse(ErrorSerializer),
            429: OpenApiResponse(ErrorSerializer, description="Throttled (Retry-After)."),
            503: OpenApiResponse(ErrorSerializer),
        },
    )
    def get(self, request: Request, user_id: int) -> Response:
        try:
            user = shared_client().get_user(user_id)
        except (NotFound, ValidationError):
            # A 422 on a look-up by id can only mean ConnectyCube takes no such id: no such user.
            return _error(_("Not found."), "not_found", status.HTTP_404_NOT_FOUND)
        return Response(ProfileSerializer(user, context=self.profile_context([user])).data)
