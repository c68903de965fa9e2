import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_connectycube.conf import DEFAULTS, ConfigurationError, app_settings


def test_defaults_apply_when_key_missing():
    with override_settings(CONNECTYCUBE={"APPLICATION_ID": 5, "AUTH_KEY": "k", "AUTH_SECRET": "s"}):
        assert app_settings.API_URL == DEFAULTS["API_URL"] == "https://api.connectycube.com"
        assert DEFAULTS["RETRIES"] == app_settings.RETRIES


def test_user_values_win_over_defaults():
    with override_settings(CONNECTYCUBE={"API_URL": "http://127.0.0.1:1", "RETRIES": 0}):
        assert app_settings.API_URL == "http://127.0.0.1:1"
        assert app_settings.RETRIES == 0


def test_override_settings_reloads_cached_values():
    with override_settings(CONNECTYCUBE={"APPLICATION_ID": 1, "AUTH_KEY": "a", "AUTH_SECRET": "s"}):
        assert app_settings.AUTH_KEY == "a"
        with override_settings(
            CONNECTYCUBE={"APPLICATION_ID": 1, "AUTH_KEY": "b", "AUTH_SECRET": "s"}
        ):
            assert app_settings.AUTH_KEY == "b"
        assert app_settings.AUTH_KEY == "a"


@pytest.mark.parametrize("name", ["APPLICATION_ID", "AUTH_KEY", "AUTH_SECRET"])
def test_missing_required_setting_names_the_key(name):
    config = {"APPLICATION_ID": 1, "AUTH_KEY": "k", "AUTH_SECRET": "s"}
    del config[name]
    with override_settings(CONNECTYCUBE=config):
        with pytest.raises(ConfigurationError, match=rf'CONNECTYCUBE\["{name}"\] is not set'):
            getattr(app_settings, name)


def test_empty_string_counts_as_missing():
    with override_settings(CONNECTYCUBE={"AUTH_KEY": ""}):
        with pytest.raises(ConfigurationError, match="AUTH_KEY"):
            app_settings.AUTH_KEY


def test_configuration_error_is_improperly_configured():
    assert issubclass(ConfigurationError, ImproperlyConfigured)


def test_no_connectycube_setting_at_all_gives_named_error(settings):
    del settings.CONNECTYCUBE
    assert DEFAULTS["API_URL"] == app_settings.API_URL
    with pytest.raises(ConfigurationError, match=r'CONNECTYCUBE\["APPLICATION_ID"\]'):
        app_settings.APPLICATION_ID


def test_non_dict_setting_is_a_configuration_error():
    with override_settings(CONNECTYCUBE=["API_URL"]):
        with pytest.raises(ConfigurationError, match="must be a dict"):
            app_settings.API_URL


def test_unknown_attribute_is_attribute_error():
    with pytest.raises(AttributeError, match="NOT_A_SETTING"):
        app_settings.NOT_A_SETTING


def test_unknown_keys_are_reported():
    with override_settings(CONNECTYCUBE={"AUTH_KYE": "x", "API_URL": "https://x"}):
        assert app_settings.unknown_keys() == ["AUTH_KYE"]


def test_importing_the_app_reads_no_settings():
    """Nothing may read settings at import: importing every module must not touch CONNECTYCUBE."""
    import importlib
    import pkgutil

    import django_connectycube

    app_settings.reload()
    for module in pkgutil.walk_packages(django_connectycube.__path__, "django_connectycube."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    assert app_settings._user_settings is None
    assert app_settings._cache == {}
