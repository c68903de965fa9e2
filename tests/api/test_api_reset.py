"""Password reset: a fixed answer time whatever the mail relay does, mail sent by a Celery task,
and default throttles per address and per client address."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.test import Client
from rest_framework.test import APIRequestFactory

from django_connectycube.api.reset import PasswordResetView
from django_connectycube.sync import password_reset, tasks

User = get_user_model()
RESET = "/api/connectycube/password-reset/"
pytestmark = [pytest.mark.usefixtures("clean_cache"), pytest.mark.django_db]

SLOW_RELAY = 1.5  # seconds the slow mail backend takes per message


class SlowRelayBackend(EmailBackend):
    """A mail relay that takes ``SLOW_RELAY`` seconds to accept a message."""

    def send_messages(self, messages):
        time.sleep(SLOW_RELAY)
        return super().send_messages(messages)


@pytest.fixture
def queued(monkeypatch):
    """Tasks handed to the broker, instead of sending them: (name, args, kwargs)."""
    sent: list[tuple[str, tuple, dict]] = []

    def apply_async(task, args=None, kwargs=None, **options):
        sent.append((task.name, tuple(args or ()), dict(kwargs or {})))

    monkeypatch.setattr("celery.app.task.Task.apply_async", apply_async)
    return sent


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    return connectycube_emulator


def reset(email, **extra):
    return Client(**extra).post(RESET, {"email": email}, content_type="application/json")


def run_queued(queued):
    for name, args, kwargs in queued:
        assert name == "django_connectycube.send_password_reset"
        tasks.send_password_reset.apply(args=args, kwargs=kwargs).get()


def test_every_address_gets_one_answer_that_never_waits_for_the_mail_relay(cube, queued, settings):
    settings.EMAIL_BACKEND = "tests.api.test_api_reset.SlowRelayBackend"
    User.objects.create_user(username="alice", email="alice@example.com", password="pw")
    cube.create_user(login="remote1", email="remote@example.com", password="12345678")
    durations, answers = {}, {}
    for email in ("alice@example.com", "remote@example.com", "nobody@example.com"):
        started = time.monotonic()
        response = reset(email)
        durations[email] = time.monotonic() - started
        answers[email] = (response.status_code, response.json())
    assert len(set(map(str, answers.values()))) == 1
    assert answers["nobody@example.com"][0] == 202
    for email, took in durations.items():
        assert took < SLOW_RELAY * 2 / 3, (email, took)  # the relay is not in the request
    assert mail.outbox == []  # nothing was sent inside a request
    assert len(queued) == 3  # every address queues the same work


def test_the_task_sends_djangos_mail_to_a_local_user(cube, queued):
    User.objects.create_user(username="alice", email="alice@example.com", password="pw")
    reset("Alice@Example.com")
    run_queued(queued)
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert "http://testserver/accounts/reset/" in message.body
    assert cube.request_count("/users/password/reset") == 0


def test_the_task_asks_connectycube_for_an_address_only_it_knows(cube, queued):
    cube.create_user(login="remote1", email="remote@example.com", password="12345678")
    reset("remote@example.com")
    run_queued(queued)
    assert mail.outbox == []
    assert [m["to"] for m in cube.outbox] == ["remote@example.com"]


def test_the_task_sends_nothing_for_an_unknown_address(cube, queued):
    reset("nobody@example.com")
    run_queued(queued)
    assert mail.outbox == []
    assert cube.outbox == []


def test_a_broker_outage_is_hidden_behind_the_same_answer(cube, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("celery.app.task.Task.apply_async", broken)
    response = reset("nobody@example.com")
    assert response.status_code == 202
    assert response.json()["code"] == "password_reset_requested"


def test_one_address_cannot_be_flooded_with_mail(cube, queued):
    answers = [reset("alice@example.com", REMOTE_ADDR=f"10.0.0.{i}").status_code for i in range(5)]
    assert answers == [202, 202, 202, 429, 429]  # the default: 3 per address and hour
    assert len(queued) == 3
    assert reset("bob@example.com", REMOTE_ADDR="10.0.0.9").status_code == 202


def test_one_client_address_cannot_try_every_address(cube, queued, settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "API_THROTTLE_RATES": {"password_reset": "2/hour"},
    }
    answers = [reset(f"user{i}@example.com").status_code for i in range(3)]
    assert answers == [202, 202, 429]
    throttled = reset("other@example.com")
    assert throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0


def test_a_throttle_can_be_turned_off(cube, queued, settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "API_THROTTLE_RATES": {"password_reset_email": None},
    }
    assert {reset("alice@example.com").status_code for _ in range(5)} == {202}


def test_an_invalid_address_is_a_400(cube, queued):
    response = reset("not an email")
    assert response.status_code == 400
    assert "email" in response.json()
    assert queued == []


def test_a_connectycube_outage_is_retried_by_the_task_then_dropped(cube, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    cube.set_fault("/users/password/reset", error_rate=1, statuses=[503])
    result = tasks.send_password_reset.apply(
        args=("nobody@example.com", "testserver", "testserver", False)
    )
    assert result.get() == "failed"
    assert cube.request_count("/users/password/reset") == tasks.RESET_MAX_RETRIES + 1


@pytest.fixture
def eager(monkeypatch):
    """No broker, as in the example project: a queued task runs at once, where it was queued."""

    def apply_async(task, args=None, kwargs=None, **options):
        return task.apply(args=args, kwargs=kwargs)

    monkeypatch.setattr("celery.app.task.Task.apply_async", apply_async)


@pytest.fixture
def work(monkeypatch):
    """Every address-dependent call of a reset: the account look-up and each mail it sends."""
    calls: list[tuple[str, str]] = []
    real_send = password_reset.send_reset_email

    def spy(email, **kwargs):
        calls.append(("send_reset_email", email))
        return real_send(email, **kwargs)

    monkeypatch.setattr(password_reset, "send_reset_email", spy)
    return calls


def answer_without_closing(email):
    """The view's answer as the server gets it, before the server closes the response."""
    request = APIRequestFactory().post(RESET, {"email": email}, format="json")
    return PasswordResetView.as_view()(request)


@pytest.mark.parametrize("email", ["alice@example.com", "remote@example.com", "nobody@example.com"])
def test_the_request_does_no_address_dependent_work_even_without_a_broker(
    cube, eager, work, settings, email
):
    """Known, ConnectyCube-only and unknown addresses alike: until the answer is written out,
    nothing has looked the address up or sent anything; the reset runs once the server closes
    the response, still with no broker."""
    User.objects.create_user(username="alice", email="alice@example.com", password="pw")
    cube.create_user(login="remote1", email="remote@example.com", password="12345678")
    response = answer_without_closing(email)
    response.render()
    assert response.status_code == 202
    assert work == []  # the answer is the same work for every address
    assert mail.outbox == [] and cube.outbox == []
    response.close()  # what the WSGI/ASGI server does once the answer is sent
    assert work == [("send_reset_email", email)]
    sent = [m.to for m in mail.outbox] + [[m["to"]] for m in cube.outbox]
    assert sent == ([] if email.startswith("nobody") else [[email]])
