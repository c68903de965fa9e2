"""pytest plugin: a ConnectyCube emulator for your test suite.

Enable it with ``pytest_plugins = ["django_connectycube.testing"]`` in a ``conftest.py`` (the
package also registers it through the ``pytest11`` entry point). Two emulator fixtures:

``connectycube_emulator_server``
    Session-scoped :class:`~django_connectycube.emulator.EmulatorServer`, started once on a
    free port of 127.0.0.1 and stopped at the end of the run.

``connectycube_emulator``
    Function-scoped: the server's :class:`~django_connectycube.emulator.Emulator`, reset before
    and after the test, with ``settings.CONNECTYCUBE`` pointing at it for the test's duration
    (``API_URL``, ``APPLICATION_ID``, ``AUTH_KEY``, ``AUTH_SECRET``; other keys are kept).
    ``connectycube_emulator.url`` is the base URL.

The emulator starts as a **new ConnectyCube application** is configured: the deprecated v1 user
look-ups are switched off (only ``GET /users/v2`` reads users), and the other dashboard switches
are at their defaults (see :mod:`django_connectycube.emulator.switches`). A test that needs
another setting changes it for itself, either way::

    def test_legacy_lookup(connectycube_emulator):
        connectycube_emulator.configure(v1_users_api=True)

    @pytest.mark.connectycube_emulator(v1_users_api=True, admin_api_key="k")
    def test_legacy_lookup_too(connectycube_emulator): ...

The settings go back to the defaults after the test (``reset()``).

Example::

    def test_signup_creates_remote_user(connectycube_emulator):
        sync.push_user(user)
        assert connectycube_emulator.request_count("POST /users") == 1
        connectycube_emulator.set_fault("POST /users", sequence=[503])  # then success

**Celery is isolated in every test** (:mod:`django_connectycube.testing.celery`): tasks are
recorded by the autouse ``connectycube_celery`` fixture instead of being sent to a broker;
``connectycube_celery.run()`` runs them in-process. ``@pytest.mark.connectycube_real_broker``
lets a test publish to the configured broker, for a real worker to consume.

This module must stay importable without configured Django settings: pytest loads it in every
run of every project that installs the package, so Django is only touched inside fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_connectycube.emulator import Emulator, EmulatorServer
from django_connectycube.testing.celery import REAL_BROKER_MARKER, connectycube_celery

__all__ = [
    "connectycube_celery",
    "connectycube_emulator",
    "connectycube_emulator_server",
    "pytest_configure",
]

#: Credentials the shared test server is started with.
TEST_APPLICATION_ID = 1
TEST_AUTH_KEY = "emulator-auth-key"
TEST_AUTH_SECRET = "emulator-auth-secret"  # noqa: S105


MARKER = "connectycube_emulator"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers, so ``--strict-markers`` runs accept them."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): configure() the ConnectyCube emulator for this test, e.g. "
        "v1_users_api=True (dashboard switches and credentials; reset afterwards)",
    )
    config.addinivalue_line(
        "markers",
        f"{REAL_BROKER_MARKER}: let this test send Celery tasks to the configured broker "
        "(by default the connectycube_celery fixture records them instead)",
    )


@pytest.fixture(scope="session")
def connectycube_emulator_server() -> Iterator[EmulatorServer]:
    """One emulator server for the whole test session (starting one per test costs a port)."""
    server = EmulatorServer(
        application_id=TEST_APPLICATION_ID,
        auth_key=TEST_AUTH_KEY,
        auth_secret=TEST_AUTH_SECRET,
    ).start()
    try:
        yield server
    finally:
        server.stop()


def _emulator_settings(server: EmulatorServer, current: Any) -> dict[str, Any]:
    merged = dict(current) if isinstance(current, dict) else {}
    emulator = server.emulator
    merged.update(
        API_URL=server.url,
        APPLICATION_ID=emulator.application_id,
        AUTH_KEY=emulator.auth_key,
        AUTH_SECRET=emulator.auth_secret,
    )
    return merged


def _django_configured() -> bool:
    try:
        from django.conf import settings
    except ImportError:
        return False
    return bool(settings.configured)


@pytest.fixture
def connectycube_emulator(
    connectycube_emulator_server: EmulatorServer, request: pytest.FixtureRequest
) -> Iterator[Emulator]:
    """A clean emulator, with Django's ``CONNECTYCUBE`` settings aimed at it for this test."""
    server = connectycube_emulator_server
    emulator = server.emulator
    emulator.reset()
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER} takes keyword arguments only, e.g. v1_users_api=True"
            )
        emulator.configure(**marker.kwargs)
    override = None
    if _django_configured():
        try:
            # pytest-django's fixture restores the setting and sends ``setting_changed``.
            settings = request.getfixturevalue("settings")
        except pytest.FixtureLookupError:
            from django.conf import settings as django_settings
            from django.test import override_settings

            current = getattr(django_settings, "CONNECTYCUBE", None)
            override = override_settings(CONNECTYCUBE=_emulator_settings(server, current))
            override.enable()
        else:
            settings.CONNECTYCUBE = _emulator_settings(
                server, getattr(settings, "CONNECTYCUBE", None)
            )
    try:
        yield emulator
    finally:
        if override is not None:
            override.disable()
        emulator.reset()
