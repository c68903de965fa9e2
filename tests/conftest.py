"""Shared fixtures: the emulator plugin, and gates for tests that need real services.

A test that needs PostgreSQL or Redis skips with a reason naming the service when it is not
reachable, so a newcomer without them still gets a green run; under ``CI`` it fails instead, so a
missing service can never turn CI green by skipping.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest_plugins = ["django_connectycube.testing", "pytester"]


def running_under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip outside CI, fail under CI."""
    if running_under_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def tcp_reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_db(db: None) -> None:
    """The test database, which must be PostgreSQL (``DATABASE_URL=postgres://...``)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        unavailable(
            "needs PostgreSQL: run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres "
            f"(the test database is {connection.vendor})"
        )


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis URL (``CELERY_BROKER_URL`` or the local default)."""
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith(("redis://", "rediss://")):
        url = "redis://127.0.0.1:6379/0"
    if not tcp_reachable(url, 6379):
        unavailable(f"needs Redis at {url} (unreachable)")
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """A reachable RabbitMQ URL (``CELERY_AMQP_URL`` or the local default vhost)."""
    url = os.environ.get("CELERY_AMQP_URL", "") or "amqp://guest:guest@127.0.0.1:5672//"
    if not tcp_reachable(url, 5672):
        unavailable(f"needs RabbitMQ at {url} (unreachable)")
    return url


@pytest.fixture(autouse=True)
def _publish_on_the_committing_thread(request: pytest.FixtureRequest) -> None:
    """Unit tests publish inside the on-commit callback (``ENQUEUE = "immediate"``).

    They patch ``Task.apply_async`` and assert on what was sent right after commit; a background
    publish would land after the assertion, or after the patch is undone. Integration tests and
    tests that ask for ``background_enqueue`` keep the library's default, the background thread.
    """
    if request.node.get_closest_marker("integration") or "background_enqueue" in (
        request.fixturenames
    ):
        return
    settings = request.getfixturevalue("settings")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "ENQUEUE": "immediate"}


@pytest.fixture
def background_enqueue(settings: Any) -> Iterator[None]:
    """The default ``ENQUEUE = "background"``; waits for the publisher at teardown, so nothing
    this test queued is published into the next one."""
    from django_connectycube.sync import enqueue

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "ENQUEUE": "background"}
    yield
    assert enqueue.flush(10.0), "the background publisher did not drain within 10 s"


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signals still record links; nothing is handed to a broker."""
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda *a, **k: None)


@pytest.fixture
def clean_cache() -> Iterator[None]:
    """An empty default cache around the test (login-failure counters, app session token)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


#: Fixtures through which a test reaches a real service: pytest-django's database fixtures (and,
#: through the closure of ``fixturenames``, whatever builds on them) and the broker URLs.
_SERVICE_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "live_server",
    "redis_url",
    "amqp_url",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--services-only",
        action="store_true",
        help="run only the tests that touch the database, a broker or a browser (the PostgreSQL "
        "stage: the rest already ran on SQLite and cannot depend on the service behind it)",
    )


def _touches_a_service(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(name) for name in ("integration", "browser", "django_db")):
        return True
    return bool(_SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Integration tests run real Celery workers: they opt out of the plugin's task recorder.

    With ``--services-only``, tests that reach no database, broker or browser are deselected.
    """
    for item in items:
        if item.get_closest_marker("integration") is not None:
            item.add_marker(pytest.mark.connectycube_real_broker)
    if config.getoption("--services-only"):
        kept = [item for item in items if _touches_a_service(item)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
