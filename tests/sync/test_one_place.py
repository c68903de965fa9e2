"""Each concept of the engine lives in one place: its errors under one base, what "transient"
means, whether a remote user is still ours, what a push learned about the remote login, the
names of a push's outcomes, what is owed, and whether a push reached ConnectyCube."""

from __future__ import annotations

import ast
import pathlib
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from django_connectycube import errors
from django_connectycube.client import (
    APIError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    User,
    ValidationError,
)
from django_connectycube.models import CubeUser
from django_connectycube.sync import breaker, cidp, lease, policy, remote_ids

PACKAGE = pathlib.Path(errors.__file__).parent
SOURCES = [
    path
    for path in PACKAGE.rglob("*.py")
    if not {"emulator", "migrations"} & set(path.relative_to(PACKAGE).parts)
]


def defined_names(name: str) -> list[str]:
    """The package modules that define (class, def or module-level assignment) ``name``."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            targets: list[str] = []
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                targets = [node.name]
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    elts = target.elts if isinstance(target, ast.Tuple) else [target]
                    targets += [e.id for e in elts if isinstance(e, ast.Name)]
            if name in targets:
                found.append(str(path.relative_to(PACKAGE)))
    return found


@pytest.mark.django_db
def test_every_error_the_engine_raises_has_the_one_base(settings):
    stale = lease.Lease(Q(pk=-1), timezone.now(), seconds=0.0)
    with pytest.raises(errors.SyncError) as lost:
        stale.renew_if_due()
    assert type(lost.value) is errors.LeaseLost
    with pytest.raises(errors.SyncError) as refused:
        cidp.answer("not-a-token")
    assert type(refused.value) is errors.Refused
    for cls in (errors.Busy, errors.SyncConflict, errors.SessionUnavailable, errors.CircuitOpen):
        assert issubclass(cls, errors.SyncError)
    for name in ("LeaseLost", "CircuitOpen", "Refused", "Busy", "SyncConflict"):
        assert defined_names(name) == ["errors.py"], name


@pytest.mark.django_db
def test_an_open_circuit_raises_the_engines_error(settings):
    from django.core.cache import cache

    cache.clear()
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "CIRCUIT_BREAKER_THRESHOLD": 1}
    breaker.record_failure()
    with pytest.raises(errors.CircuitOpen) as info:
        breaker.probe_or_wait()
    assert isinstance(info.value, errors.SyncError)
    assert policy.unavailable(info.value)
    assert 1 <= policy.retry_after(info.value) <= 60
    breaker.reset()


@pytest.mark.parametrize(
    ("error", "down", "later"),
    [
        (TransportError("no answer"), True, True),
        (ServerError("boom", status=503), True, True),
        (RateLimited("slow down", status=429, retry_after=7), True, True),
        (APIError("Invalid JSON in the answer", status=200), True, False),
        (errors.SessionUnavailable("later", retry_after=3), False, True),
        (ValidationError("bad", status=422, errors={"login": ["taken"]}), False, False),
        (NotFound("gone", status=404), False, False),
        (errors.SyncConflict("not ours"), False, False),
    ],
)
def test_transient_has_one_definition(error, down, later):
    """What the breaker counts (``remote_failed``) and what a frontend is told to retry later
    (``unavailable``) are both the failure policy's; every one of them is retried."""
    assert policy.remote_failed(error) is down
    assert policy.unavailable(error) is later
    if down or later:
        assert policy.classify(error) is policy.Kind.TRANSIENT
    for name in ("TRANSIENT_ERRORS", "UNAVAILABLE", "is_transient", "retry_after_for"):
        assert defined_names(name) in ([], ["api/errors.py"]), name


def test_retry_after_is_what_the_error_said_or_the_default(monkeypatch):
    monkeypatch.setattr(policy, "UNAVAILABLE_RETRY_AFTER", 11)
    assert policy.retry_after(RateLimited("slow", status=429, retry_after=7)) == 7
    assert policy.retry_after(errors.SessionUnavailable("later", retry_after=3)) == 3
    assert policy.retry_after(TransportError("no answer")) == 11


class _Client:
    def __init__(self, remote: User | None) -> None:
        self.remote = remote

    def get_user(self, cube_id: int) -> User:
        if self.remote is None:
            raise NotFound("gone", status=404)
        return self.remote


def test_whether_the_remote_user_is_still_ours_is_asked_in_one_place():
    link = CubeUser(cube_id=5, external_id="x-1", login="alice")
    assert remote_ids.still_ours(link, _Client(User(id=5, external_id="x-1")))
    assert not remote_ids.still_ours(link, _Client(User(id=5, external_id="someone-else")))
    assert not remote_ids.still_ours(link, _Client(None))
    assert not remote_ids.still_ours(CubeUser(external_id="x-1"), _Client(None))
    assert defined_names("_remote_is_ours") == defined_names("_still_ours") == []


def test_what_a_push_learned_of_the_remote_login_is_recorded_in_one_place():
    link = CubeUser(external_id="x-1", login="alice")
    remote_ids.learn(link, 9, None)  # an answer without a login keeps the owned one
    assert (link.cube_id, link.login) == (9, "alice")
    remote_ids.learn(link, 9, "alice_2")
    assert link.login == "alice_2"
    spelled = [
        str(path.relative_to(PACKAGE))
        for path in SOURCES
        if "login or link.login" in path.read_text()
    ]
    assert spelled == ["sync/remote_ids.py"]


def test_the_outcome_names_are_defined_once():
    for name in ("CREATED", "ADOPTED", "UPDATED", "UNCHANGED", "SKIPPED", "DELETED", "GONE"):
        assert defined_names(name) == ["sync/policy.py"], name
    outcomes = [
        policy.CREATED,
        policy.ADOPTED,
        policy.UPDATED,
        policy.UNCHANGED,
        policy.SKIPPED,
        policy.DELETED,
        policy.GONE,
        policy.FAILED,
        policy.RETRYING,
        policy.BUSY,
        policy.DISABLED,
    ]
    assert len(set(outcomes)) == len(outcomes)


@pytest.mark.django_db
def test_a_repush_is_owed_through_the_owed_module(django_user_model):
    from django_connectycube.sync import owed

    user = django_user_model.objects.create(username="repush")
    now = timezone.now()
    CubeUser.objects.filter(user=user).update(
        state=CubeUser.State.SYNCED, synced_version=1, dirty_version=1, pushed_digest="d"
    )
    assert owed.mark_repush(CubeUser.objects.filter(user=user), now + timedelta(seconds=1)) == 1
    link = CubeUser.objects.get(user=user)
    assert link.state == CubeUser.State.PENDING
    assert link.pushed_digest == ""
    assert defined_names("link_missing_users") == []


def test_the_breaker_counts_the_calls_it_learns_from():
    class Transport:
        before_attempt: list = []

    class Client:
        transport = Transport()

    client = Client()
    assert breaker.watch(breaker.watch(client)) is client
    assert len(client.transport.before_attempt) == 1
    before = breaker.calls_made()
    client.transport.before_attempt[0]()
    assert breaker.calls_made() == before + 1
    assert defined_names("calls_made") == ["sync/breaker.py"]


def test_the_package_warns_of_no_deprecation():
    for path in SOURCES:
        text = path.read_text()
        assert "DeprecationWarning" not in text, path
        assert "warnings.warn" not in text, path
