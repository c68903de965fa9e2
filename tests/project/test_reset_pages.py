"""The reset pages the tutorial and the example project mount: only the ones the reset e-mail
links to, never Django's own ``password_reset/`` form.

Django's ``PasswordResetView`` looks the address up and sends the mail inside the request, for
known addresses only, so its answer time tells known addresses from unknown ones; the API's
``password-reset/`` is the one way in to a reset.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from tests.project.test_example_project import _run_example
from tests.project.test_readme_quickstart import snippets

LINK = {"uidb64": "MQ", "token": "set-password"}


def test_the_tutorial_mounts_the_reset_link_but_not_djangos_reset_form():
    urlconf = types.ModuleType("readme_urls")
    exec(snippets()["urls"], urlconf.__dict__)  # noqa: S102 - the tutorial's own snippet
    assert reverse("password_reset_confirm", urlconf=urlconf, kwargs=LINK)
    assert reverse("password_reset_complete", urlconf=urlconf)
    with pytest.raises(NoReverseMatch):
        reverse("password_reset", urlconf=urlconf)
    with pytest.raises(Resolver404):
        resolve("/accounts/password_reset/", urlconf=urlconf)


def test_the_example_project_has_no_django_reset_form(tmp_path: Path) -> None:
    result = _run_example(
        tmp_path,
        """
        from django.urls import NoReverseMatch, reverse
        call_command("migrate", verbosity=0)
        client = Client(HTTP_HOST="localhost")
        result["form"] = client.get("/password_reset/").status_code
        result["confirm"] = reverse(
            "password_reset_confirm", kwargs={"uidb64": "MQ", "token": "set-password"}
        )
        result["login"] = client.get(reverse("login")).status_code
        try:
            reverse("password_reset")
        except NoReverseMatch:
            result["named"] = False
        else:
            result["named"] = True
        """,
    )
    assert result == {
        "form": 404,
        "confirm": "/reset/MQ/set-password/",
        "login": 200,
        "named": False,
    }
