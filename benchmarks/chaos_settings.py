"""Django settings for the chaos run (driver and workers): the test settings, tuned by env.

Why separate from ``tests.settings``: the chaos run needs short timeouts (so injected timeouts
happen without stalling the run), a short ``SWEEP_AFTER`` (the sweep is what recovers the
messages a Redis restart loses), the failure policy's production defaults with time compressed
by ``CHAOS_TIME_SCALE`` (never a raised attempt cap: a run must show that nothing gives up on
work it could do), the circuit breaker shared through the run's own Redis, the project's
mapping callable that can be made to fail, workers that never stop reconnecting to a restarted
broker, and logs at DEBUG on stderr so the secret check has every line the library writes.
"""

from __future__ import annotations

from benchmarks.chaos_faults import compressed
from tests.settings import *  # noqa: F403
from tests.settings import CONNECTYCUBE, env

CONNECTYCUBE = {
    **CONNECTYCUBE,
    **compressed(env.float("CHAOS_TIME_SCALE", default=1.0)),
    "TASK_MAX_ATTEMPTS": None,  # the production default: give up by time alone
    "CIRCUIT_BREAKER_CACHE": "breaker",
    "USER_FIELDS": "benchmarks.chaos_faults.mapped_fields",
    "TIMEOUT": (
        env.float("CONNECTYCUBE_CONNECT_TIMEOUT", default=2.0),
        env.float("CONNECTYCUBE_READ_TIMEOUT", default=2.0),
    ),
    "SWEEP_AFTER": env.int("CONNECTYCUBE_SWEEP_AFTER", default=300),
    "MAX_RETRY_WAIT": env.float("CONNECTYCUBE_MAX_RETRY_WAIT", default=5.0),
    "PASSWORD_SECRETS": {1: env("CONNECTYCUBE_PASSWORD_SECRET", default="chaos-password-secret")},
}

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

# A worker that loses Redis keeps trying to reconnect for as long as it runs.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

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
