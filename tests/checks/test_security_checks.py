"""Type checks of the security settings (``connectycube.E002``) and the secrets warnings."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from django_connectycube.checks.security import check_security_settings

GOOD = {"APPLICATION_ID": 1, "AUTH_KEY": "k", "AUTH_SECRET": "s"}


def ids(messages):
    return sorted(m.id for m in messages)


def test_defaults_pass():
    with override_settings(CONNECTYCUBE=GOOD):
        assert check_security_settings() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOGIN_FAILURE_LIMIT", 0),
        ("LOGIN_FAILURE_IP_LIMIT", 2.5),
        ("CACHE", "no-such-cache"),
        ("CACHE", None),
        ("API_CONTACT_FIELDS", True),
        ("API_CONTACT_FIELDS", "everyone"),
        ("API_THROTTLE_RATES", ["10/hour"]),
        ("API_THROTTLE_RATES", {"password_reset": "often"}),
        ("API_THROTTLE_RATES", {"pasword_reset": "10/hour"}),
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
        ("API_CONTACT_FIELDS", "searchable"),
        ("API_CONTACT_FIELDS", "public"),
        ("API_THROTTLE_RATES", {"lookup": None, "password_reset": "3/min"}),
    ],
)
def test_good_values_pass(name, value):
    with override_settings(CONNECTYCUBE={**GOOD, name: value}):
        assert check_security_settings() == []


# -- connectycube.W012: protections every process must share -----------------------------------

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
DUMMY = {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
FILE = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": "/tmp/x"}
DATABASE = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache_t"}
REDIS = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:1/0",  # never connected to: the check reads settings only
}
#: Every protection switched on: CIdP logins, a rate limit, the breaker (on by default).
EVERYTHING = {**GOOD, "AUTH_MODE": "cidp", "RATE_LIMIT": 10}
PROTECTIONS = {
    "login": "the login failure counters",
    "cidp": "single use of CIdP tokens",
    "breaker": "the circuit breaker",
    "rate": "the rate limit",
    "token": "the application session token",
    "throttles": "the API's throttles",
}


def shared_state(connectycube=EVERYTHING, debug=False, **caches):
    from django_connectycube.checks.security import check_shared_caches

    with override_settings(DEBUG=debug, CONNECTYCUBE=connectycube, CACHES=caches):
        return check_shared_caches()


def named(message):
    return {name for name, what in PROTECTIONS.items() if what in message.msg}


def test_per_process_cache_in_production_is_one_w012_naming_every_protection():
    [message] = shared_state(default=LOCMEM)
    assert message.id == "connectycube.W012" and message.level == checks.WARNING
    assert named(message) == set(PROTECTIONS)
    assert "'default'" in message.msg and "LocMemCache" in message.msg
    assert "per process" in message.msg
    assert "Redis" in message.hint and "SILENCED_SYSTEM_CHECKS" in message.hint


def test_dummy_cache_remembers_nothing_and_is_w012():
    [message] = shared_state(default=DUMMY)
    assert named(message) == set(PROTECTIONS)
    assert "DummyCache" in message.msg


def test_a_shared_cache_is_quiet():
    assert shared_state(default=REDIS) == []


def test_debug_on_is_quiet():
    assert shared_state(debug=True, default=LOCMEM) == []


def test_one_alias_holds_every_shared_protection():
    # CACHE on Redis: only DRF's throttles, which live in the default cache, are named.
    [message] = shared_state({**EVERYTHING, "CACHE": "redis"}, default=LOCMEM, redis=REDIS)
    assert named(message) == {"throttles"}
    assert "'default'" in message.msg and "'redis'" not in message.msg


def test_a_per_process_cache_alias_names_its_protections_but_not_the_throttles():
    [message] = shared_state({**EVERYTHING, "CACHE": "local"}, default=REDIS, local=LOCMEM)
    assert named(message) == set(PROTECTIONS) - {"throttles"}
    assert "'local'" in message.msg and "CACHE" in message.hint


def test_protections_that_are_off_are_not_named():
    connectycube = {
        **GOOD,
        "CIRCUIT_BREAKER_THRESHOLD": 0,
        "API_THROTTLE_RATES": {
            "password_reset": None,
            "password_reset_email": None,
            "lookup": None,
        },
    }
    [message] = shared_state(connectycube, default=LOCMEM)
    assert named(message) == {"login", "token"}


def test_login_counters_and_throttles_need_the_api_mounted():
    with override_settings(ROOT_URLCONF="tests.urls_without_api"):
        [message] = shared_state({**GOOD, "CIRCUIT_BREAKER_THRESHOLD": 0}, default=LOCMEM)
    assert named(message) == {"token"}


def test_file_cache_is_shared_but_its_add_and_incr_are_not_atomic():
    [message] = shared_state(default=FILE)
    assert "FileBasedCache" in message.msg and "not atomic" in message.msg
    # the application token and DRF's throttles only need sharing, which one machine has
    assert named(message) == {"login", "cidp", "breaker", "rate"}


def test_database_cache_adds_atomically_but_increments_by_read_then_write():
    [message] = shared_state(default=DATABASE)
    assert named(message) == {"login", "breaker", "rate"}


def test_unknown_alias_is_left_to_e002():
    [message] = shared_state({**EVERYTHING, "CACHE": "nope"}, default=LOCMEM)
    assert named(message) == {"throttles"}


def test_w012_shows_in_manage_py_check_unless_silenced():
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with override_settings(DEBUG=False, CACHES={"default": LOCMEM}, SILENCED_SYSTEM_CHECKS=[]):
        with pytest.raises(SystemCheckError, match=r"connectycube\.W012"):
            call_command("check", fail_level="WARNING", tags=["security"])


def test_throttle_rates_given_in_part_keep_the_other_default_scopes_on():
    connectycube = {**GOOD, "API_THROTTLE_RATES": {"lookup": None}}
    [message] = shared_state(connectycube, default=LOCMEM)
    assert "throttles" in named(message)
