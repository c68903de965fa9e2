from django.apps import AppConfig


class ConnectyCubeConfig(AppConfig):
    """Registers checks and signal receivers only once Django is ready, never at import time."""

    name = "django_connectycube"
    verbose_name = "ConnectyCube"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_connectycube.checks import (  # noqa: F401  (registers the system checks)
            celery,
            configuration,
            retry,
            security,
        )
        from django_connectycube.sync.receivers import connect_receivers

        connect_receivers()

        from django.apps import apps

        if apps.is_installed("django.contrib.admin"):
            from django_connectycube.admin import add_inline_to_user_admin

            add_inline_to_user_admin()
