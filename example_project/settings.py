"""Settings for the example site, read from the environment (see ``.env.example``).

Every value has a working default, so ``make demo`` runs with no configuration: SQLite, tasks
run in-process, and ConnectyCube is the built-in emulator on 127.0.0.1:8765.
"""

from pathlib import Path

import environ

import django_connectycube

BASE_DIR = Path(__file__).resolve().parent

env = environ.Env(
    DEBUG=(bool, True),
    ALLOWED_HOSTS=(list, ["localhost", "127.0.0.1", "[::1]"]),
)
environ.Env.read_env(BASE_DIR.parent / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="example-project-insecure-key-change-me")
DEBUG = env("DEBUG")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_connectycube",
    "example_project.accounts",
]

AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The login counters, single use of CIdP tokens, the breaker, the rate limit and the application
# token must be shared by every process (connectycube.W012): with a Redis broker they live in
# that Redis too, unless CACHE_URL names another cache. Without one (the demo: one process)
# local memory is right.
_BROKER = env("CELERY_BROKER_URL", default="")
_REDIS_BROKER = _BROKER if _BROKER.startswith(("redis://", "rediss://")) else ""
CACHES = {"default": env.cache("CACHE_URL", default=_REDIS_BROKER or "locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "media")))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "profile"
LOGOUT_REDIRECT_URL = "home"
# Password-reset e-mails (from POST /api/connectycube/password-reset/, sent after its answer)
# go to the console unless a real backend is configured.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

# Celery: without a broker, tasks run in-process (eager), which is right for a demo and wrong for
# production; set CELERY_BROKER_URL=redis://127.0.0.1:6379/0 and start a worker for the real thing.
CELERY_BROKER_URL = _BROKER
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BROKER_URL = CELERY_BROKER_URL or "memory://"
# A worker that loses the broker (a Redis restart, a failover) keeps reconnecting for as long as
# it runs, instead of exiting after Celery's default 100 tries; the tasks it was running are
# cancelled rather than acknowledged late on a connection that is gone (they come back after
# the visibility timeout, or the sweep sends their users again).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# A publish that finds the broker down gives up within a second: the row stays owed and the
# sweep sends it, so a save never waits long on the broker.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Redis hands an unacknowledged message (its worker was killed) to another worker after this;
# keep it above a minute, the longest retry countdown the sync tasks ask the broker to hold.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Hands owed users back to the workers if a broker or worker outage lost their task.
CELERY_BEAT_SCHEDULE = {
    "connectycube-sweep": {"task": "django_connectycube.sweep_dirty", "schedule": 60.0},
    "connectycube-verify": {"task": "django_connectycube.verify_links", "schedule": 60.0},
}

# The API (django_connectycube.api) and its OpenAPI schema at /api/schema/ when the optional
# extra is installed (pip install django-connectycube[openapi]).
# Behind a reverse proxy (nginx, a load balancer), count it here so the login limits and the
# throttles apply per client rather than to the proxy's address.
REST_FRAMEWORK: dict[str, object] = {"NUM_PROXIES": env.int("CONNECTYCUBE_NUM_PROXIES", default=0)}
try:
    import drf_spectacular  # noqa: F401
except ImportError:
    pass
else:
    INSTALLED_APPS.append("drf_spectacular")
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
    SPECTACULAR_SETTINGS = {
        "TITLE": "django-connectycube API",
        "DESCRIPTION": "ConnectyCube sessions, user look-ups and password reset for a frontend.",
        "VERSION": django_connectycube.__version__,
    }
    try:
        import drf_spectacular_sidecar  # noqa: F401
    except ImportError:  # the docs page then loads Swagger UI from a CDN
        pass
    else:
        # Swagger UI and ReDoc served from this site's static files: /api/docs/ works offline.
        INSTALLED_APPS.append("drf_spectacular_sidecar")
        SPECTACULAR_SETTINGS.update(
            SWAGGER_UI_DIST="SIDECAR", SWAGGER_UI_FAVICON_HREF="SIDECAR", REDOC_DIST="SIDECAR"
        )

CONNECTYCUBE = {
    "API_URL": env("CONNECTYCUBE_API_URL", default="http://127.0.0.1:8765"),
    "APPLICATION_ID": env.int("CONNECTYCUBE_APPLICATION_ID", default=1),
    "AUTH_KEY": env("CONNECTYCUBE_AUTH_KEY", default="emulator-auth-key"),
    "AUTH_SECRET": env("CONNECTYCUBE_AUTH_SECRET", default="emulator-auth-secret"),
    "AVATAR_FIELD": "avatar",
    # Optional: the Administration API key (ConnectyCube's Advanced plan); remote deletes use it.
    "ADMIN_API_KEY": env("CONNECTYCUBE_ADMIN_API_KEY", default=None),
    # Own secrets, so that rotating SECRET_KEY never changes ConnectyCube passwords or the key
    # of stored tokens. The demo's defaults equal what SECRET_KEY would give; set real ones.
    "PASSWORD_SECRETS": {1: env("CONNECTYCUBE_PASSWORD_SECRET", default=SECRET_KEY)},
    "TOKEN_KEYS": env.list("CONNECTYCUBE_TOKEN_KEYS", default=[SECRET_KEY]),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_connectycube": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")}
    },
}
