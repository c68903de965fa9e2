"""The tutorial, run as written: a throwaway project built only from its snippets.

Each ``<!-- quickstart:NAME -->`` comment in docs/tutorial.md marks the code block after it. The
test starts a project with ``startproject``, adds the snippets where the tutorial says, migrates,
creates a user (mirrored at once to an emulator, development settings), runs its ``curl`` login
against ``runserver``, and checks the production settings with ``manage.py check``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

import django_connectycube

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = pytest.mark.meta

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
SNIPPET = re.compile(r"<!-- quickstart:(?P<name>[a-z]+) -->\n```[a-z]*\n(?P<code>.*?)```", re.S)


def snippets() -> dict[str, str]:
    found: dict[str, str] = {}
    for match in SNIPPET.finditer(TUTORIAL.read_text()):
        assert match["name"] not in found, f"quickstart:{match['name']} appears twice"
        found[match["name"]] = match["code"]
    return found


def test_the_tutorial_marks_every_quickstart_snippet():
    assert set(snippets()) == {
        "settings",
        "celery",
        "init",
        "urls",
        "openapi",
        "openapiurls",
        "login",
        "production",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def serve(args: list[str], port: int, **kwargs) -> subprocess.Popen:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    wait_for_port(port, process)
    return process


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(10)


def test_a_project_built_from_the_quickstart_mirrors_users_and_logs_in(tmp_path, processes):
    code = snippets()
    emulator_port, site_port = free_port(), free_port()
    processes.append(
        serve(
            [
                sys.executable,
                "-m",
                "django_connectycube.emulator",
                "--port",
                str(emulator_port),
                "--app-id",
                "1",
                "--auth-key",
                "KEY",
                "--auth-secret",
                "SECRET",
            ],
            emulator_port,
        )
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CONNECTYCUBE_", "CELERY_", "DATABASE_"))
    }
    env.update(
        CONNECTYCUBE_API_URL=f"http://127.0.0.1:{emulator_port}",
        CONNECTYCUBE_APPLICATION_ID="1",
        CONNECTYCUBE_AUTH_KEY="KEY",
        CONNECTYCUBE_AUTH_SECRET="SECRET",
    )

    def run(*args: str, **extra: str) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    run("-m", "django", "startproject", "mysite", ".")
    package = tmp_path / "mysite"
    with (package / "settings.py").open("a") as settings:
        settings.write("\n" + code["settings"] + "\n" + code["openapi"])
    (package / "celery.py").write_text(code["celery"])
    (package / "__init__.py").write_text(code["init"])
    (package / "urls.py").write_text(code["urls"] + "\n" + code["openapiurls"])
    (package / "settings_production.py").write_text(
        "from .settings import *  # noqa: F403\n\n" + code["production"]
    )

    run("manage.py", "migrate", "-v", "0")
    checked = run("manage.py", "check")
    assert "connectycube.E" not in checked and "connectycube.W010" not in checked, checked
    run(
        "manage.py",
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_user('ann', 'ann@example.com', 's3cret-pass')",
    )
    state = requests.get(f"http://127.0.0.1:{emulator_port}/_emulator/state", timeout=10).json()
    assert [user["login"] for user in state["users"]] == ["ann"]

    processes.append(
        serve(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{site_port}", "--noreload"],
            site_port,
            cwd=tmp_path,
            env=env,
        )
    )
    login = code["login"].replace("127.0.0.1:8000", f"127.0.0.1:{site_port}")
    answer = subprocess.run(
        ["bash", "-c", login], capture_output=True, text=True, timeout=60, check=True
    )
    session = json.loads(answer.stdout)
    assert session["user_id"] == state["users"][0]["id"]
    assert session["api_url"] == f"http://127.0.0.1:{emulator_port}"
    assert session["token"]
    schema = requests.get(
        f"http://127.0.0.1:{site_port}/api/schema/", params={"format": "json"}, timeout=30
    ).json()
    assert schema["info"]["version"] == django_connectycube.__version__
    assert "/api/connectycube/login/" in schema["paths"]

    production_env = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DATABASE_NAME": "mysite",
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_USER": "mysite",
        "DATABASE_PASSWORD": "mysite-password",
        "EMAIL_HOST": "mail.example.com",
        "DEFAULT_FROM_EMAIL": "site@example.com",
        "CONNECTYCUBE_TOKEN_KEY": Fernet.generate_key().decode(),
        "CONNECTYCUBE_PASSWORD_SECRET": "a-fresh-production-secret",
    }
    production = run(
        "manage.py", "check", DJANGO_SETTINGS_MODULE="mysite.settings_production", **production_env
    )
    assert "System check identified no issues" in production, production

    # The user created under the development settings still logs in to ConnectyCube under the
    # production secrets (the doctor's trial login; the site's database and a local cache, so no
    # PostgreSQL or Redis is needed for it).
    (package / "settings_production_here.py").write_text(
        "from . import settings as development\n"
        "from .settings_production import *  # noqa: F403\n\n"
        "DATABASES = development.DATABASES\n"
        'CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}\n'
    )
    report = run(
        "manage.py",
        "connectycube_doctor",
        "--json",
        "--check",
        "credentials",
        "--check",
        "password_secret",
        DJANGO_SETTINGS_MODULE="mysite.settings_production_here",
        **production_env,
    )
    findings = {item["check"]: item for item in json.loads(report)["checks"]}
    assert findings["password_secret"]["status"] == "ok", findings["password_secret"]
