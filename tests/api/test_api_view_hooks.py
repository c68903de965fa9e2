"""DRF's own hooks on the API views: what a subclass sets wins; settings only fill the default.

An integrator who subclasses a view and sets ``permission_classes`` or ``throttle_classes`` is
locking it down (or opening it) on purpose; a setting must never silently undo that.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.throttling import BaseThrottle

from django_connectycube.api.views import LoginView, UserDetailView, UserListView

User = get_user_model()

pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]

factory = APIRequestFactory()


class DenyAll(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 7


class AdminsOnlyDetail(UserDetailView):
    permission_classes = [IsAdminUser]


class OpenDetail(UserDetailView):
    permission_classes = [AllowAny]


class ThrottledDetail(UserDetailView):
    throttle_classes = [DenyAll]


class MembersOnlyLogin(LoginView):
    permission_classes = [IsAuthenticated]


def detail(view_class, user=None):
    request = factory.get("/users/424242/")
    if user is not None:
        force_authenticate(request, user=user)
    return view_class.as_view()(request, user_id=424242)


@pytest.fixture
def alice(connectycube_emulator):
    return User.objects.create_user(username="alice", password="pw")


def test_a_subclass_permission_classes_are_enforced_over_the_setting(alice, settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
    assert detail(AdminsOnlyDetail, alice).status_code == 403
    alice.is_staff = True
    alice.save()
    assert detail(AdminsOnlyDetail, alice).status_code == 404  # allowed: no such remote user


def test_a_subclass_may_open_a_view_the_setting_closes(connectycube_emulator):
    assert detail(UserDetailView).status_code in (401, 403)
    assert detail(OpenDetail).status_code == 404


def test_a_subclass_throttle_classes_replace_the_defaults(alice):
    response = detail(ThrottledDetail, alice)
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert detail(UserDetailView, alice).status_code == 404


def test_a_subclass_of_an_open_view_may_close_it(connectycube_emulator):
    body = {"username": "alice"}  # no password: a 400, once the view lets the request in
    request = factory.post("/login/", body, format="json")
    assert MembersOnlyLogin.as_view()(request).status_code in (401, 403)
    request = factory.post("/login/", body, format="json")
    assert LoginView.as_view()(request).status_code == 400


def test_settings_fill_the_default_on_every_access(settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": ["tests.api.test_api_view_hooks.DenyAll"],
    }
    view = UserListView()
    assert view.permission_classes == [IsAdminUser]
    assert [type(t) for t in view.get_throttles()][-1] is DenyAll
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}
    assert DenyAll not in UserListView.throttle_classes
    assert AdminsOnlyDetail.permission_classes == [IsAdminUser]
