"""The client contract, run against the emulator always and against the real ConnectyCube when
``CONNECTYCUBE_LIVE_*`` is set (the way django-anymail's live integration tests work).

Every test takes the ``target`` fixture, parametrized over ``"emulator"`` and ``"live"``. The
live items carry ``pytest.mark.live`` and are deselected (not skipped, not failed) unless
``CONNECTYCUBE_LIVE_APPLICATION_ID``, ``..._AUTH_KEY`` and ``..._AUTH_SECRET`` are all set;
``CONNECTYCUBE_LIVE_API_URL`` (default production) and ``CONNECTYCUBE_LIVE_ADMIN_API_KEY`` are
optional. ``pytest -m live`` runs only them.

Everything a test creates is named with one random prefix per run and removed at teardown, even
when the test fails; a user that cannot be removed fails the teardown with its login, so a leak
is never silent.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from django_connectycube.client import (
    AuthenticationError,
    ConnectyCubeClient,
    MemoryAppSessionStore,
    NotFound,
    User,
    UserClient,
)
from django_connectycube.emulator import Emulator

T = TypeVar("T")

LIVE_VARIABLES = (
    "CONNECTYCUBE_LIVE_APPLICATION_ID",
    "CONNECTYCUBE_LIVE_AUTH_KEY",
    "CONNECTYCUBE_LIVE_AUTH_SECRET",
)
ADMIN_VARIABLE = "CONNECTYCUBE_LIVE_ADMIN_API_KEY"
PRODUCTION_URL = "https://api.connectycube.com"
#: The emulator target's Administration API key.
EMULATOR_ADMIN_KEY = "contract-admin-key"

#: One per run: every login, e-mail, tag and external id the suite creates starts with it.
PREFIX = f"cct{secrets.token_hex(4)}"
_numbers = itertools.count(1)


def live_configured() -> bool:
    return all(os.environ.get(name) for name in LIVE_VARIABLES)


def _runnable(item: pytest.Item) -> bool:
    if not item.get_closest_marker("live"):
        return True
    if not live_configured():
        return False
    return bool(os.environ.get(ADMIN_VARIABLE)) or "admin_target" not in getattr(
        item, "fixturenames", ()
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Live items without the credentials they need are deselected (and reported so)."""
    dropped = [item for item in items if not _runnable(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if _runnable(item)]


@dataclass
class Target:
    """A ConnectyCube to run the contract against."""

    name: str
    client: ConnectyCubeClient
    admin_api_key: str | None = None
    emulator: Emulator | None = None


@pytest.fixture(scope="session")
def live_client() -> Iterator[ConnectyCubeClient]:
    """One client (one application session) for the whole live run."""
    client = ConnectyCubeClient(
        os.environ.get("CONNECTYCUBE_LIVE_API_URL") or PRODUCTION_URL,
        os.environ["CONNECTYCUBE_LIVE_APPLICATION_ID"],
        os.environ["CONNECTYCUBE_LIVE_AUTH_KEY"],
        os.environ["CONNECTYCUBE_LIVE_AUTH_SECRET"],
        app_session_store=MemoryAppSessionStore(),
        admin_api_key=os.environ.get(ADMIN_VARIABLE) or None,
    )
    with client:
        yield client
        with contextlib.suppress(Exception):  # leave no session behind on the real application
            client.destroy_session(client.app_token())


@pytest.fixture(params=["emulator", pytest.param("live", marks=pytest.mark.live)])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "live":
        client = request.getfixturevalue("live_client")
        yield Target("live", client, os.environ.get(ADMIN_VARIABLE) or None)
        return
    emulator: Emulator = request.getfixturevalue("connectycube_emulator")
    assert emulator.url
    emulator.configure(admin_api_key=EMULATOR_ADMIN_KEY)
    client = ConnectyCubeClient(
        emulator.url,
        emulator.application_id,
        emulator.auth_key,
        emulator.auth_secret,
        app_session_store=MemoryAppSessionStore(),
        admin_api_key=EMULATOR_ADMIN_KEY,
    )
    with client:
        yield Target("emulator", client, EMULATOR_ADMIN_KEY, emulator)


@pytest.fixture
def admin_target(target: Target) -> Target:
    """A target whose client holds the Administration API key (live: the optional variable)."""
    assert target.client.has_admin_api_key
    return target


@dataclass
class Account:
    """A user the suite created, with what it takes to act as them and to remove them."""

    user: User
    login: str
    password: str
    email: str
    external_id: str
    blobs: list[int] = field(default_factory=list)
    deleted: bool = False


class Accounts:
    """Creates uniquely named users for one test and removes them (and their blobs) after it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.created: list[Account] = []
        self.tokens: list[str] = []

    def create(self, **fields: Any) -> Account:
        n = next(_numbers)
        login = f"{PREFIX}u{n}"
        password = secrets.token_urlsafe(12)
        email = fields.pop("email", f"{login}@example.com")
        external_id = fields.pop("external_id", f"{PREFIX}-{n}")
        user = self.target.client.create_user(
            login=login, password=password, email=email, external_id=external_id, **fields
        )
        account = Account(user, login, password, email, external_id)
        self.created.append(account)
        return account

    def as_user(self, account: Account) -> UserClient:
        session = self.target.client.create_user_session(
            login=account.login, password=account.password
        )
        self.tokens.append(session.token)
        return self.target.client.as_user(session)

    def cleanup(self) -> list[str]:
        """Remove everything created; the logins that could not be removed."""
        leaked = []
        for account in reversed(self.created):
            if account.deleted:
                continue
            try:
                self._remove(account)
            except Exception as exc:  # report every leak, not only the first
                leaked.append(f"{account.login} (id {account.user.id}): {exc}")
        for token in self.tokens:
            with contextlib.suppress(Exception):  # most died with their user
                self.target.client.destroy_session(token)
        return leaked

    def _remove(self, account: Account) -> None:
        client = self.target.client
        try:
            me = self.as_user(account)
        except AuthenticationError:
            if not client.has_admin_api_key:
                raise
            client.admin_delete_user(account.user.id)  # the password changed: the admin key can
            return
        for blob_id in account.blobs:
            with contextlib.suppress(NotFound):
                me.delete_blob(blob_id)
        me.delete_self()


@pytest.fixture
def accounts(target: Target) -> Iterator[Accounts]:
    made = Accounts(target)
    yield made
    leaked = made.cleanup()
    if leaked:
        pytest.fail(f"{target.name}: could not remove " + "; ".join(leaked), pytrace=False)


def eventually(check: Callable[[], T], *, timeout: float = 10.0) -> T:
    """``check()``'s result once it stops raising ``AssertionError``/``NotFound``.

    A search index may trail a write on the real service (not documented either way [I]); the
    emulator answers on the first try, so this costs nothing there.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, NotFound):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
