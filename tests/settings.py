"""Test settings: SQLite in memory by default, PostgreSQL/Redis from the environment."""

from __future__ import annotations

import environ

env = environ.Env()

SECRET_KEY = "test-secret-key-not-for-production"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "django_connectycube",
    "tests.testapp",
]

AUTH_USER_MODEL = "testapp.User"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default="sqlite://:memory:")}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if env("CACHE_URL", default=""):  # one cache for several worker processes (the rate limit)
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env("CACHE_URL"),
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default=""),
        }
    }

# The tests run in one process, where local memory is the right cache; those with worker
# processes set CACHE_URL, and then connectycube.W012 must stay audible.
SILENCED_SYSTEM_CHECKS = [] if env("CACHE_URL", default="") else ["connectycube.W012"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests

CONNECTYCUBE = {
    "API_URL": env("CONNECTYCUBE_API_URL", default="https://api.connectycube.com"),
    "APPLICATION_ID": env.int("CONNECTYCUBE_APPLICATION_ID", default=1),
    "AUTH_KEY": env("CONNECTYCUBE_AUTH_KEY", default="test-auth-key"),
    "AUTH_SECRET": env("CONNECTYCUBE_AUTH_SECRET", default="test-auth-secret"),
    "AVATAR_FIELD": "avatar",
    "TASK_QUEUE": env("CONNECTYCUBE_TASK_QUEUE", default=None),
    "LEASE_SECONDS": env.int("CONNECTYCUBE_LEASE_SECONDS", default=120),
    "RETRY_HORIZON": env.float("CONNECTYCUBE_RETRY_HORIZON", default=3 * 24 * 3600),
    "RETRIES": env.int("CONNECTYCUBE_RETRIES", default=3),
    "RATE_LIMIT": env.int("CONNECTYCUBE_RATE_LIMIT", default=None),
}

REST_FRAMEWORK = {
    # Basic auth lets the schemathesis run authenticate without CSRF; sessions for the views.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
}
try:  # the OpenAPI schema is an optional extra
    import drf_spectacular  # noqa: F401
except ImportError:  # pragma: no cover
    pass
else:
    INSTALLED_APPS.append("drf_spectacular")
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"

STATIC_URL = "/static/"  # the live server (CIdP tests) serves static files under it

MEDIA_ROOT = env("MEDIA_ROOT", default="/tmp/django-connectycube-test-media")

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="memory://")
CELERY_TASK_ALWAYS_EAGER = False
# Short enough that a message a killed worker held is redelivered within a test.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django_connectycube": {"handlers": ["null"], "level": "DEBUG"}},
}
