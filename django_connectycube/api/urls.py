"""URLs of the API (namespace ``connectycube``); include them under any prefix."""

from __future__ import annotations

from django.urls import path, re_path

from django_connectycube.api import cidp, views
from django_connectycube.api.errors import NOT_FOUND_URL_NAME, not_found

app_name = "connectycube"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("session/", views.SessionView.as_view(), name="session"),
    path("users/", views.UserListView.as_view(), name="user-list"),
    path("users/<int:user_id>/", views.UserDetailView.as_view(), name="user-detail"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path("cidp/verify/", cidp.verify, name="cidp-verify"),
    # Last: every other path under the prefix is a JSON 404, never Django's HTML page.
    re_path(r"", not_found, name=NOT_FOUND_URL_NAME),
]
