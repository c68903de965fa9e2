"""Django settings for the chaos run (driver and workers): production's, with time compressed.

Why separate from ``tests.settings``: the run must behave as production would. Every duration
among the package's defaults (failure policy, sweep, lease, client timeouts) and the example
project's broker visibility timeout is divided by one factor, ``CHAOS_TIME_SCALE``; counts
(attempt cap: none, the breaker's threshold, the client's retries) and the example project's
broker options (workers that never stop reconnecting) are production's as they are. Beyond
that: the circuit breaker shared through the run's own Redis (as production shares it), the
project's mapping callable that can be made to fail, and logs at DEBUG on stderr so the secret
check has every line the library writes.
"""

from __future__ import annotations

from benchmarks.chaos_faults import compressed, visibility_timeout
from example_project.settings import (
    CELERY_BROKER_CONNECTION_MAX_RETRIES,  # noqa: F401
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP,  # noqa: F401
    CELERY_TASK_PUBLISH_RETRY_POLICY,  # noqa: F401
    CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS,  # noqa: F401
)
from tests.settings import *  # noqa: F403
from tests.settings import CONNECTYCUBE, env

SCALE = env.float("CHAOS_TIME_SCALE", default=1.0)

CONNECTYCUBE = {
    "API_URL": CONNECTYCUBE["API_URL"],
    "APPLICATION_ID": CONNECTYCUBE["APPLICATION_ID"],
    "AUTH_KEY": CONNECTYCUBE["AUTH_KEY"],
    "AUTH_SECRET": CONNECTYCUBE["AUTH_SECRET"],
    "AVATAR_FIELD": CONNECTYCUBE["AVATAR_FIELD"],
    "TASK_QUEUE": CONNECTYCUBE["TASK_QUEUE"],
    **compressed(SCALE),
    "CACHE": "breaker",
    "USER_FIELDS": "benchmarks.chaos_faults.mapped_fields",
    "PASSWORD_SECRETS": {1: env("CONNECTYCUBE_PASSWORD_SECRET", default="chaos-password-secret")},
}

CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": visibility_timeout(SCALE)}
CELERY_WORKER_PREFETCH_MULTIPLIER = 4  # Celery's default, which the example project keeps

# The breaker's state, shared by every worker and the driver (the run's own Redis, db 1). Short
# socket timeouts: while Redis is down the breaker counts as closed, at once.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "breaker": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CHAOS_CACHE_URL"),  # set by the run: its own Redis, never another
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_connectycube": {
            "handlers": ["stderr"],
            "level": env("CHAOS_LOG_LEVEL", default="DEBUG"),
            "propagate": False,
        },
    },
}
