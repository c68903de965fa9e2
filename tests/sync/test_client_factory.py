"""The app's side of the client: clients built from ``settings.CONNECTYCUBE``, the shared ones,
the application session on Django's cache, and the names that moved here from the client."""

from __future__ import annotations

import ast
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import responses
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import django_connectycube
from django_connectycube import __version__
from django_connectycube.client import ConfigurationError as ClientConfigurationError
from django_connectycube.client import ConnectyCubeClient, StoredAppSession
from django_connectycube.conf import ConfigurationError
from django_connectycube.sync import connection as client_factory
from django_connectycube.sync.app_session_cache import DjangoCacheAppSessionStore
from django_connectycube.sync.connection import (
    build_client,
    login_client,
    reset_clients,
    shared_client,
)

API = "https://cc.test"
SETTINGS = {
    "API_URL": API,
    "APPLICATION_ID": 3,
    "AUTH_KEY": "k-settings-1",
    "AUTH_SECRET": "s-settings-1",
}
SESSION = {"session": {"id": 1, "application_id": 3, "token": "cached-token-1", "nonce": 1}}
PAGE = {"limit": 1, "skip": 0, "total_entries": 1, "items": [{"id": 7, "login": "bob"}]}


@pytest.fixture(autouse=True)
def fresh_clients():
    cache.clear()
    reset_clients()
    yield
    reset_clients()
    cache.clear()


@responses.activate
@override_settings(CONNECTYCUBE={**SETTINGS, "TIMEOUT": [2, 9], "RETRIES": 1})
def test_built_clients_share_the_app_session_through_the_django_cache():
    responses.post(f"{API}/session", status=201, json=SESSION)
    responses.get(f"{API}/users/v2", json=PAGE)
    client = build_client()
    assert client.application_id == 3
    assert client.transport.timeout == (2.0, 9.0)
    assert client.transport.policy.retries == 1
    assert isinstance(client.store, DjangoCacheAppSessionStore)
    client.get_user(7)
    build_client().get_user(7)
    assert sum(c.request.method == "POST" for c in responses.calls) == 1
    assert responses.calls[1].request.headers["User-Agent"] == f"django-connectycube/{__version__}"


@override_settings(CONNECTYCUBE={**SETTINGS, "ADMIN_API_KEY": "from-settings-key"})
def test_build_client_reads_the_admin_key_and_takes_overrides():
    assert build_client().has_admin_api_key
    assert not build_client(admin_api_key=None).has_admin_api_key


@override_settings(CONNECTYCUBE={"API_URL": API, "APPLICATION_ID": 3, "AUTH_KEY": "k"})
def test_a_missing_setting_is_named():
    with pytest.raises(ImproperlyConfigured, match="AUTH_SECRET"):
        build_client()


@override_settings(CONNECTYCUBE={**SETTINGS, "API_URL": "ftp://cc.test"})
def test_a_setting_the_client_refuses_is_an_improperly_configured():
    with pytest.raises(ConfigurationError, match="api_url must start with http") as info:
        build_client()
    assert isinstance(info.value, ImproperlyConfigured)
    assert isinstance(info.value.__cause__, ClientConfigurationError)


def test_the_app_configuration_error_is_both_djangos_and_the_clients():
    assert issubclass(ConfigurationError, ImproperlyConfigured)
    assert issubclass(ConfigurationError, ClientConfigurationError)
    assert not issubclass(ClientConfigurationError, ImproperlyConfigured)


@override_settings(CONNECTYCUBE=SETTINGS)
def test_each_shared_client_is_built_once_however_many_threads_ask(monkeypatch):
    built: list[ConnectyCubeClient] = []
    real = client_factory.build_client

    def slow_build(**overrides):
        time.sleep(0.05)  # wide open for a second builder without the lock
        built.append(real(**overrides))
        return built[-1]

    monkeypatch.setattr(client_factory, "build_client", slow_build)
    barrier = threading.Barrier(8)

    def ask(i: int) -> ConnectyCubeClient:
        barrier.wait()
        return shared_client() if i % 2 else login_client()

    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = list(pool.map(ask, range(8)))
    assert len(built) == 2
    assert {id(c) for c in clients} == {id(b) for b in built}
    assert shared_client() is not login_client()


@override_settings(
    CONNECTYCUBE={**SETTINGS, "TIMEOUT": 30, "RETRIES": 3, "SYNC_ON_LOGIN_TIMEOUT": 4}
)
def test_the_login_client_fits_in_the_login_timeout():
    client = login_client()
    assert client.transport.timeout == (4.0, 4.0)
    assert client.transport.policy.retries == 1
    assert client.transport.policy.max_retry_wait == 2.0
    assert shared_client().transport.timeout == 30.0


def test_changed_settings_rebuild_both_shared_clients(settings):
    settings.CONNECTYCUBE = SETTINGS
    shared, login = shared_client(), login_client()
    settings.CONNECTYCUBE = {**SETTINGS, "APPLICATION_ID": 4}
    assert shared_client() is not shared
    assert login_client() is not login
    assert shared_client().application_id == login_client().application_id == 4


def test_django_cache_store_round_trip_and_lock():
    store = DjangoCacheAppSessionStore()
    assert store.get("k") is None
    store.set("k", StoredAppSession("cache-token-1", time.time() + 100))
    assert store.get("k").token == "cache-token-1"
    owner = store.acquire_lock("k", timeout=30)
    assert owner
    assert store.acquire_lock("k", timeout=30) is None
    store.release_lock("k", owner)
    assert store.acquire_lock("k", timeout=30)
    store.delete("k")
    assert store.get("k") is None


# ---- names that moved to the app ------------------------------------------------------------


def private_uses(path: Path) -> list[str]:
    """``client._x`` / ``transport._x`` reached from app code, and ``_x`` imported from the client:
    the client's privates may change with it, the app must not lean on them."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            owner = node.value.func if isinstance(node.value, ast.Call) else node.value
            name = getattr(owner, "id", None) or getattr(owner, "attr", "")
            if not node.attr.startswith("__") and ("client" in name.lower() or name == "transport"):
                found.append(f"{path.name}:{node.lineno} {name}.{node.attr}")
        if isinstance(node, ast.ImportFrom) and "client" in (node.module or "").split("."):
            found += [
                f"{path.name}:{node.lineno} import {a.name}"
                for a in node.names
                if a.name.startswith("_")
            ]
    return found


def test_the_app_uses_only_the_clients_public_names():
    package = Path(django_connectycube.__file__).parent
    app_modules = [
        path
        for path in package.rglob("*.py")
        if path.relative_to(package).parts[0] not in ("client", "emulator", "migrations")
    ]
    assert len(app_modules) > 40
    assert [use for path in app_modules for use in private_uses(path)] == []
