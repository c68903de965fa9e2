"""System checks of the failure policy's settings (types, the lease)."""

import pytest
from django.test import override_settings

from django_connectycube.checks.retry import check_retry_settings

GOOD = {"APPLICATION_ID": 1, "AUTH_KEY": "k", "AUTH_SECRET": "s"}


def ids(messages):
    return sorted(m.id for m in messages)


def test_the_defaults_pass():
    with override_settings(CONNECTYCUBE=GOOD):
        assert check_retry_settings() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETRY_HORIZON", "3 days"),
        ("RETRY_HORIZON", -1),
        ("CIRCUIT_BREAKER_THRESHOLD", -1),
        ("CIRCUIT_BREAKER_THRESHOLD", 2.5),
        ("CIRCUIT_BREAKER_COOLDOWN", "30s"),
        ("CIRCUIT_BREAKER_COOLDOWN", True),
    ],
)
def test_bad_values_are_e002_naming_the_key(name, value):
    with override_settings(CONNECTYCUBE={**GOOD, name: value}):
        messages = check_retry_settings()
    assert ids(messages) == ["connectycube.E002"], [m.msg for m in messages]
    assert name in messages[0].msg


@pytest.mark.parametrize(
    ("name", "value"),
    [("CIRCUIT_BREAKER_THRESHOLD", 0), ("CIRCUIT_BREAKER_COOLDOWN", 2.5), ("RATE_LIMIT", 10)],
)
def test_good_values_pass(name, value):
    with override_settings(CONNECTYCUBE={**GOOD, name: value}):
        assert check_retry_settings() == []


def test_a_lease_shorter_than_one_slow_request_is_w006():
    # Default timeouts (5 + 30 s) and MAX_RETRY_WAIT (30 s): 65 s between two renewals at
    # worst, renewed after a third of the lease, so the lease needs 97.5 s.
    with override_settings(CONNECTYCUBE={**GOOD, "LEASE_SECONDS": 90}):
        messages = check_retry_settings()
    assert ids(messages) == ["connectycube.W007"]
    assert "98" in messages[0].msg
    with override_settings(CONNECTYCUBE={**GOOD, "LEASE_SECONDS": 98}):
        assert check_retry_settings() == []
    with override_settings(CONNECTYCUBE={**GOOD, "LEASE_SECONDS": 30, "TIMEOUT": (2, 5)}):
        assert ids(check_retry_settings()) == ["connectycube.W007"]
    shorter = {**GOOD, "LEASE_SECONDS": 30, "TIMEOUT": (2, 5), "MAX_RETRY_WAIT": 5}
    with override_settings(CONNECTYCUBE=shorter):
        assert check_retry_settings() == []
