"""The example site (``example_project``), with its own settings, in a separate process.

What a person trying the demo meets: the API docs page offline, the profile form's avatar rules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

_PRELUDE = """
import json, django
django.setup()
from django.core.management import call_command
from django.test import Client
result = {}
"""


def _run_example(tmp_path: Path, code: str, **extra: str) -> dict[str, Any]:
    """Run ``code`` under example_project.settings; it fills ``result``, printed as JSON."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CELERY_BROKER_URL", "CACHE_URL", "DEBUG", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'example.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / "media"),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    script = _PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


_SHARED_STATE = """
from django.conf import settings
from django_connectycube.checks.security import check_shared_caches
result["backend"] = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
result["warnings"] = [m.id for m in check_shared_caches()]
"""


def test_a_redis_broker_shares_the_protections_through_redis_too(tmp_path: Path) -> None:
    result = _run_example(
        tmp_path, _SHARED_STATE, DEBUG="false", CELERY_BROKER_URL="redis://127.0.0.1:6379/4"
    )
    assert result == {"backend": "RedisCache", "warnings": []}


def test_the_demo_keeps_local_memory_and_production_without_redis_is_warned(
    tmp_path: Path,
) -> None:
    assert _run_example(tmp_path, _SHARED_STATE) == {"backend": "LocMemCache", "warnings": []}
    production = _run_example(tmp_path, _SHARED_STATE, DEBUG="false")
    assert production == {"backend": "LocMemCache", "warnings": ["connectycube.W012"]}


def test_api_docs_reference_no_external_host(tmp_path: Path) -> None:
    result = _run_example(
        tmp_path,
        """
        import re
        from django.contrib.staticfiles import finders
        from django.conf import settings
        page = Client().get("/api/docs/", HTTP_HOST="127.0.0.1")
        html = page.content.decode()
        result["status"] = page.status_code
        result["external"] = re.findall(r"(?:https?:)?//[\\w.-]+\\.[a-z]{2,}[^\\s\\"'<>]*", html)
        static = [m for m in re.findall(r"[\\"'](/?static/[^\\"']+)[\\"']", html)]
        result["static"] = static
        result["missing"] = [
            path for path in static
            if finders.find(path.lstrip("/").removeprefix(settings.STATIC_URL.strip("/") + "/"))
            is None
        ]
        """,
    )
    assert result["status"] == 200
    assert result["external"] == []
    assert any(path.endswith("swagger-ui-bundle.js") for path in result["static"])
    assert result["missing"] == []


_FORM = """
call_command("migrate", verbosity=0)
from django.core.files.uploadedfile import SimpleUploadedFile
from example_project.accounts.forms import ProfileForm
from example_project.accounts.models import User

user = User.objects.create(username="ann", email="ann@example.com")
PNG = b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00" * 64

def errors(name, content, content_type):
    form = ProfileForm(
        data={"email": "ann@example.com"},
        files={"avatar": SimpleUploadedFile(name, content, content_type=content_type)},
        instance=user,
    )
    form.is_valid()
    return [(e.code, e.message % (e.params or {})) for e in form.errors.as_data().get("avatar", [])]

result["png"] = errors("me.png", PNG, "image/png")
result["text_named_png"] = errors("me.png", b"hello, not an image", "image/png")
result["svg"] = errors("me.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")
result["big"] = errors("big.png", PNG + b"\\x00" * (5 * 1024 * 1024), "image/png")
"""


@pytest.fixture(scope="module")
def avatar_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run_example(tmp_path_factory.mktemp("example"), _FORM)


def test_a_real_image_is_accepted(avatar_errors: dict[str, Any]) -> None:
    assert avatar_errors["png"] == []


@pytest.mark.parametrize("case", ["text_named_png", "svg"])
def test_a_file_that_is_not_an_image_is_a_form_error(
    avatar_errors: dict[str, Any], case: str
) -> None:
    [(code, message)] = avatar_errors[case]
    assert code == "avatar_not_an_image"
    assert message.startswith("This file is not a picture we can show. Upload a ")
    assert "PNG" in message and "JPG" in message


def test_an_avatar_over_5_mb_is_a_form_error(avatar_errors: dict[str, Any]) -> None:
    [(code, message)] = avatar_errors["big"]
    assert code == "avatar_too_large"
    assert message == "The picture is 5.0\xa0MB; the limit is 5.0\xa0MB."


def test_swagger_and_the_admin_show_the_package_version(tmp_path: Path) -> None:
    result = _run_example(
        tmp_path,
        """
        call_command("migrate", verbosity=0)
        from django.contrib import admin
        result["schema"] = Client().get(
            "/api/schema/", {"format": "json"}, HTTP_HOST="127.0.0.1"
        ).json()["info"]["version"]
        result["header"] = str(admin.site.site_header)
        """,
    )
    from django_connectycube import __version__

    assert result["schema"] == __version__
    assert __version__ in result["header"]
