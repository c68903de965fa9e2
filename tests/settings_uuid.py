"""The test settings with a UUID-pk user model (``--ds=tests.settings_uuid``)."""

from .settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "tests.testapp"] + [  # noqa: F405
    "tests.uuidapp"
]
AUTH_USER_MODEL = "uuidapp.User"
