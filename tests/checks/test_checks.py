import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_connectycube.checks.celery import check_celery
from django_connectycube.checks.configuration import check_settings

GOOD = {"APPLICATION_ID": 1, "AUTH_KEY": "k", "AUTH_SECRET": "s"}


def ids(messages):
    return sorted(m.id for m in messages)


def test_complete_configuration_passes():
    with override_settings(CONNECTYCUBE=GOOD):
        assert check_settings() == []


def test_missing_credentials_is_e001_one_per_key():
    with override_settings(CONNECTYCUBE={"AUTH_KEY": "k"}):
        messages = check_settings()
    assert ids(messages) == ["connectycube.E001", "connectycube.E001"]
    text = " ".join(m.msg for m in messages)
    assert 'CONNECTYCUBE["APPLICATION_ID"]' in text
    assert 'CONNECTYCUBE["AUTH_SECRET"]' in text
    assert all(m.level == checks.ERROR for m in messages)


def test_e001_fails_manage_py_check():
    with override_settings(CONNECTYCUBE={}):
        with pytest.raises(SystemCheckError, match=r"connectycube\.E001"):
            call_command("check")


def test_http_api_url_without_debug_is_w001():
    with override_settings(
        DEBUG=False, CONNECTYCUBE={**GOOD, "API_URL": "http://cube.example.com"}
    ):
        assert ids(check_settings()) == ["connectycube.W001"]


def test_http_api_url_with_debug_is_fine():
    with override_settings(DEBUG=True, CONNECTYCUBE={**GOOD, "API_URL": "http://cube.example.com"}):
        assert check_settings() == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_http_to_loopback_emulator_is_not_w001(host):
    with override_settings(DEBUG=False, CONNECTYCUBE={**GOOD, "API_URL": f"http://{host}:8765"}):
        assert check_settings() == []


@pytest.mark.parametrize("url", ["api.connectycube.com", "ftp://x", "", None])
def test_unusable_api_url_is_e002(url):
    with override_settings(CONNECTYCUBE={**GOOD, "API_URL": url}):
        assert ids(check_settings()) == ["connectycube.E002"]


def test_non_numeric_application_id_is_e002():
    with override_settings(CONNECTYCUBE={**GOOD, "APPLICATION_ID": "my-app"}):
        messages = check_settings()
    assert ids(messages) == ["connectycube.E002"]
    assert "APPLICATION_ID" in messages[0].msg


def test_non_dict_setting_is_e002_not_a_traceback():
    with override_settings(CONNECTYCUBE="oops"):
        assert ids(check_settings()) == ["connectycube.E002"]


def test_unknown_key_is_w003():
    with override_settings(CONNECTYCUBE={**GOOD, "AUTH_SECRETT": "x"}):
        messages = check_settings()
    assert ids(messages) == ["connectycube.W003"]
    assert "AUTH_SECRETT" in messages[0].msg
    assert "spelling" in messages[0].hint


@pytest.mark.parametrize(
    ("name", "replacement"),
    [
        ("LOGIN_FAILURE_CACHE", "CACHE"),
        ("RATE_LIMIT_CACHE", "CACHE"),
        ("API_CONTACT_LOOKUPS", "API_CONTACT_FIELDS"),
        ("NUM_PROXIES", 'REST_FRAMEWORK["NUM_PROXIES"]'),
        ("TASK_BACKOFF_MAX", "RETRY_HORIZON"),
        ("CIDP_CLOCK_SKEW", "fixed value"),
    ],
)
def test_a_removed_setting_is_w003_saying_what_replaced_it(name, replacement):
    with override_settings(CONNECTYCUBE={**GOOD, name: "redis"}):
        messages = check_settings()
    assert ids(messages) == ["connectycube.W003"]
    assert f'CONNECTYCUBE["{name}"] is no longer a setting' in messages[0].msg
    assert replacement in messages[0].hint


def test_no_celery_app_is_w002(monkeypatch):
    monkeypatch.setattr("django_connectycube.checks.celery.configured_celery_app", lambda: None)
    assert ids(check_celery()) == ["connectycube.W002"]


def test_configured_celery_app_passes_w002():
    from celery import Celery

    app = Celery("tests-check", set_as_current=True)
    try:
        assert "connectycube.W002" not in ids(check_celery())
    finally:
        app.close()


def test_checks_are_registered_with_the_connectycube_tag():
    registered = checks.registry.registry.get_checks()
    assert check_settings in registered
    assert check_celery in registered
    assert "connectycube" in checks.registry.registry.tags_available()


def test_only_celerys_fallback_app_counts_as_none(monkeypatch):
    import weakref

    from celery import Celery, _state

    from django_connectycube.checks.celery import configured_celery_app

    fallback = Celery("default", set_as_current=False)
    monkeypatch.setattr(_state, "_apps", weakref.WeakSet([fallback]))
    monkeypatch.setattr(_state._tls, "current_app", None)
    assert configured_celery_app() is None
    assert ids(check_celery()) == ["connectycube.W002"]
    project = Celery("proj", set_as_current=False)
    _state._apps.add(project)
    assert configured_celery_app() is project


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIMEOUT", "5"),
        ("TIMEOUT", (1, 2, 3)),
        ("RETRIES", -1),
        ("RETRIES", True),
        ("MAX_RETRY_WAIT", "soon"),
        ("USER_FIELDS", "no.such.mapping"),
        ("PASSWORD_SECRETS", {"one": "x"}),
        ("PASSWORD_SECRETS", {}),
        ("TOKEN_KEYS", "single-key-not-a-list"),
        ("AVATAR_FIELD", "no_such_field"),
        ("AVATAR_FIELD", "no.such.callable"),
        ("ADMIN_API_KEY", 12345),
        ("ADMIN_API_KEY", "  "),
        ("EXTERNAL_ID_PREFIX", "prod-eu"),
        ("EXTERNAL_ID_PREFIX", ""),
        ("EXTERNAL_ID_PREFIX", 7),
        ("FIREBASE_PHONE_LOOKUP", "no_such_field"),
        ("FIREBASE_PHONE_LOOKUP", "no.such.callable"),
        ("FIREBASE_PHONE_LOOKUP", 42),
        ("FIREBASE_PHONE_FIELD_VERIFIED", "yes"),
    ],
)
def test_bad_values_are_e002_naming_the_key(name, value):
    with override_settings(CONNECTYCUBE={**GOOD, name: value}):
        messages = check_settings()
    assert ids(messages) == ["connectycube.E002"], [m.msg for m in messages]
    assert name in messages[0].msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIMEOUT", 3),
        ("TIMEOUT", (3.05, 27)),
        ("AVATAR_FIELD", "avatar"),
        ("TOKEN_KEYS", ["k"]),
        ("ADMIN_API_KEY", "admin-key"),
        ("ADMIN_API_KEY", None),
        ("EXTERNAL_ID_PREFIX", "prod_eu.2"),
        ("FIREBASE_PHONE_LOOKUP", None),
        ("FIREBASE_PHONE_LOOKUP", "tests.sync.test_identity_attacks.verified_phone_owner"),
        ("FIREBASE_PHONE_LOOKUP", len),
    ],
)
def test_good_values_pass(name, value):
    with override_settings(
        CONNECTYCUBE={**GOOD, "FIREBASE_PROJECT_ID": "site-project", name: value}
    ):
        assert check_settings() == []


def test_a_plain_profile_field_for_firebase_phones_is_e003_unless_vouched_for():
    with override_settings(CONNECTYCUBE={**GOOD, "FIREBASE_PHONE_LOOKUP": "phone"}):
        messages = check_settings()
    assert ids(messages) == ["connectycube.E003"]
    assert "FIREBASE_PHONE_FIELD_VERIFIED" in messages[0].msg
    assert messages[0].level == checks.ERROR
    vouched = {
        **GOOD,
        "FIREBASE_PHONE_LOOKUP": "phone",
        "FIREBASE_PHONE_FIELD_VERIFIED": True,
        "FIREBASE_PROJECT_ID": "site-project",
    }
    with override_settings(CONNECTYCUBE=vouched):
        assert check_settings() == []


def test_firebase_phone_login_without_the_sites_project_is_w006():
    configured = {**GOOD, "FIREBASE_PHONE_LOOKUP": len, "FIREBASE_PROJECT_ID": None}
    with override_settings(CONNECTYCUBE=configured):
        messages = check_settings()
    assert ids(messages) == ["connectycube.W006"]
    assert "FIREBASE_PROJECT_ID" in messages[0].msg


def test_a_fresh_process_registers_the_checks_when_django_starts():
    """``manage.py check`` runs them without anything importing the check modules first."""
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from django.core import checks; "
        "print('connectycube' in checks.registry.registry.tags_available())"
    )
    env = {**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "True", out.stderr
