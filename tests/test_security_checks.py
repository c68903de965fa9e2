"""Type checks of the security settings (``connectycube.E002``) and the secrets warnings."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_connectycube.security_checks import check_security_settings

GOOD = {"APPLICATION_ID": 1, "AUTH_KEY": "k", "AUTH_SECRET": "s"}


def ids(messages):
    return sorted(m.id for m in messages)


def test_defaults_pass():
    with override_settings(CONNECTYCUBE=GOOD):
        assert check_security_settings() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NUM_PROXIES", -1),
        ("NUM_PROXIES", "1"),
        ("LOGIN_FAILURE_LIMIT", 0),
        ("LOGIN_FAILURE_IP_LIMIT", 2.5),
        ("LOGIN_FAILURE_WINDOW", None),
        ("LOGIN_FAILURE_DELAY", 0),
        ("LOGIN_FAILURE_MAX_DELAY", "15 minutes"),
        ("LOGIN_FAILURE_MAX_DELAY", 0.5),  # below the first delay
        ("LOGIN_FAILURE_CACHE", "no-such-cache"),
        ("LOGIN_DEVICE_COOKIE", ""),
        ("LOGIN_DEVICE_COOKIE_AGE", True),
        ("API_CONTACT_LOOKUPS", "yes"),
        ("API_THROTTLE_RATES", ["10/hour"]),
        ("API_THROTTLE_RATES", {"password_reset": "often"}),
        ("API_THROTTLE_RATES", {"pasword_reset": "10/hour"}),
        ("PASSWORD_RESET_MIN_SECONDS", -1),
        ("CIDP_CLOCK_SKEW", 1.5),
        ("CIDP_REPLAY_CACHE", None),
    ],
)
def test_bad_values_are_e002_naming_the_key(name, value):
    with override_settings(CONNECTYCUBE={**GOOD, name: value}):
        messages = check_security_settings()
    assert ids(messages) == ["connectycube.E002"], [m.msg for m in messages]
    assert name in messages[0].msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NUM_PROXIES", 2),
        ("LOGIN_DEVICE_COOKIE", None),
        ("API_CONTACT_LOOKUPS", True),
        ("API_THROTTLE_RATES", {"lookup": None, "password_reset": "3/min"}),
        ("LOGIN_FAILURE_DELAY", 0.5),
    ],
)
def test_good_values_pass(name, value):
    with override_settings(CONNECTYCUBE={**GOOD, name: value}):
        assert check_security_settings() == []
