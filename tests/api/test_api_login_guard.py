"""The login guard against attacks from outside: look-alike account names, an attacker who takes
every slot the delay opens, and a cross-site form that logs the victim's browser in.

Time is a fake clock (``time.time`` read by the guard and by the local-memory cache), so "the
moment the wait ends" is exact and no test sleeps.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils.crypto import get_random_string

from django_connectycube.api import lockout

User = get_user_model()
LOGIN = "/api/connectycube/login/"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker", "clean_cache")]


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    return connectycube_emulator


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(time, "time", fake)
    return fake


def post(client: Client, username: str, password: str):
    body = {"username": username, "password": password}
    return client.post(LOGIN, body, content_type="application/json")


# ---- one account, whatever the spelling ----------------------------------------------------


def test_a_look_alike_account_cannot_lend_its_device_budget_to_the_victim(cube, clock):
    """``rußell`` and ``russell`` are two accounts (``casefold`` makes both ``russell``): the
    owner of one gets no guesses at the other from their own device or good logins."""
    User.objects.create_user(username="russell", password="victim-secret")
    User.objects.create_user(username="rußell", password="attacker-pass")
    attacker = Client()
    checked = 0
    for _ in range(20):
        assert post(attacker, "rußell", "attacker-pass").status_code == 200  # refills, if any
        for _ in range(5):
            answer = post(attacker, "russell", "guess")
            assert answer.status_code in (401, 429)
            checked += answer.status_code == 401
    assert checked == 5  # the victim's five free failures, then its delay holds


def test_the_device_cookie_names_the_account_not_its_spelling(cube):
    User.objects.create_user(username="russell", password="victim-secret")
    User.objects.create_user(username="rußell", password="attacker-pass")
    attacker = Client()
    assert post(attacker, "rußell", "attacker-pass").status_code == 200
    for _ in range(5):
        post(Client(), "russell", "guess")
    # Locked for strangers at this address; the attacker's device is a stranger to russell.
    assert post(attacker, "russell", "guess").status_code == 429


def test_a_good_login_on_one_account_leaves_the_address_budget_alone(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "LOGIN_FAILURE_IP_LIMIT": 3}
    User.objects.create_user(username="mallory", password="own-pass")
    device = Client()
    assert post(device, "mallory", "own-pass").status_code == 200
    for name in ("a1", "a2", "a3"):
        assert post(Client(), name, "guess").status_code == 401
    assert post(device, "mallory", "own-pass").status_code == 200
    assert post(Client(), "a4", "guess").status_code == 429


# ---- the owner always gets a turn ----------------------------------------------------------


def test_an_attacker_taking_every_slot_does_not_keep_the_owner_out(cube, clock, monkeypatch):
    monkeypatch.setattr(lockout, "DELAY", 1)
    monkeypatch.setattr(lockout, "MAX_DELAY", 8)
    User.objects.create_user(username="alice", password="right-password")

    def attack():
        return post(Client(REMOTE_ADDR="198.51.100.66"), "alice", "guess")

    for _ in range(12):  # up to the cap
        answer = attack()
        if answer.status_code == 429:
            clock.advance(int(answer["Retry-After"]))
    owner_in, waits = 0, set()
    for _ in range(25):
        answer = attack()
        if answer.status_code == 429:  # fire the moment the wait ends
            waits.add(answer["Retry-After"])
            clock.advance(int(answer["Retry-After"]))
            answer = attack()
        assert answer.status_code == 401  # the attacker won the slot
        owner = Client(REMOTE_ADDR="203.0.113.7")  # a new device elsewhere
        owner_in += post(owner, "alice", "right-password").status_code == 200
    assert waits == {"8"}  # the attacker was at the cap throughout
    assert owner_in == 25


def test_the_attacker_still_waits_after_the_owner_logs_in(cube, clock, settings):
    User.objects.create_user(username="alice", password="right-password")
    attacker = Client(REMOTE_ADDR="198.51.100.66")
    for _ in range(5):
        assert post(attacker, "alice", "guess").status_code == 401
    assert post(attacker, "alice", "guess").status_code == 429
    assert post(Client(REMOTE_ADDR="203.0.113.7"), "alice", "right-password").status_code == 200
    assert post(attacker, "alice", "guess").status_code == 429


# ---- login CSRF ----------------------------------------------------------------------------


def test_a_cross_site_form_cannot_log_the_browser_in(cube):
    User.objects.create_user(username="mallory", password="own-pass")
    browser = Client(enforce_csrf_checks=True)
    answer = browser.post(LOGIN, {"username": "mallory", "password": "own-pass"})
    assert answer.status_code == 403
    assert answer.json()["code"] == "permission_denied"
    assert lockout.DEVICE_COOKIE not in answer.cookies


def test_a_form_with_the_sites_csrf_token_logs_in(cube):
    User.objects.create_user(username="ann", password="ann-pass")
    browser = Client(enforce_csrf_checks=True)
    token = get_random_string(32)  # the secret the site's pages put in the CSRF cookie
    browser.cookies["csrftoken"] = token
    body = {"username": "ann", "password": "ann-pass", "csrfmiddlewaretoken": token}
    answer = browser.post(LOGIN, body)
    assert answer.status_code == 200, answer.content
    assert lockout.DEVICE_COOKIE in answer.cookies


def test_json_credentials_need_no_csrf_token(cube):
    """A browser cannot send ``application/json`` to another site without CORS allowing it."""
    User.objects.create_user(username="ann", password="ann-pass")
    answer = post(Client(enforce_csrf_checks=True), "ann", "ann-pass")
    assert answer.status_code == 200, answer.content
