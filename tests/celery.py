"""The test suite's Celery app, configured from Django settings like a real project's."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def compress_the_failure_policy(**kwargs: object) -> None:
    """A test worker (tests.worker.Worker) waits fractions of a second between retries, and may
    hold shorter countdowns than production, so that both of a retry's paths run in a test."""
    from django_connectycube.sync import policy

    for name in ("BACKOFF_BASE", "COUNTDOWN_MAX"):
        value = os.environ.get(f"CONNECTYCUBE_TEST_{name}")
        if value:
            setattr(policy, name, float(value))
