"""Settings for the benchmarks: the test settings, with the database, broker and ConnectyCube
endpoint taken from ``BENCH_*`` environment variables set by :mod:`benchmarks._common`."""

from __future__ import annotations

import os

import environ

from tests.settings import *  # noqa: F403
from tests.settings import CONNECTYCUBE as _TEST_CONNECTYCUBE

_env = environ.Env()

DATABASES = {"default": _env.db("BENCH_DATABASE_URL", default="sqlite://:memory:")}
CELERY_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "memory://")
CELERY_TASK_ALWAYS_EAGER = False

CONNECTYCUBE = {
    **_TEST_CONNECTYCUBE,
    "API_URL": os.environ.get("BENCH_API_URL", "http://127.0.0.1:9"),
    "APPLICATION_ID": 1,
    "AUTH_KEY": os.environ.get("BENCH_AUTH_KEY", "bench-auth-key"),
    "AUTH_SECRET": os.environ.get("BENCH_AUTH_SECRET", "bench-auth-secret"),
    "TASK_QUEUE": os.environ.get("BENCH_TASK_QUEUE") or None,
}

# The tests log the app at DEBUG (into a null handler), which formats and redacts a line per
# request; a site runs at INFO or quieter, and that is what the figures should describe.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django_connectycube": {"handlers": ["null"], "level": "INFO"}},
}
