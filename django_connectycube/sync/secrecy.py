"""Which local variables Django's error reports must never show.

``sensitive_variables`` hides names in the decorated function's frame and in every frame it
calls (up to the next decorated one), so one list on the entry points of a login covers the
client frames below them as well, which cannot import Django themselves. Django's filter is
only active while ``DEBUG`` is off; the API answers its own errors as JSON (never Django's debug
page), so nothing of this reaches a response while ``DEBUG`` is on either.
"""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

__all__ = ["SENSITIVE_POST_PARAMETERS", "SENSITIVE_VARIABLES", "hide_secrets"]

#: Names of locals that hold, or may hold, a password, a derived password, a token or a body
#: carrying one (the client builds request bodies in ``json``/``body``/``kwargs``).
SENSITIVE_VARIABLES = (
    "password",
    "old_password",
    "new_password",
    "candidate",
    "candidates",
    "credentials",
    "secret",
    "secrets",
    "token",
    "access_token",
    "external_token",
    "data",
    "validated_data",
    "attrs",
    "serializer",
    "params",
    "payload",
    "body",
    "json",
    "kwargs",
    "extra",
    "fields",
)

#: Form fields of the API's requests that carry secrets.
SENSITIVE_POST_PARAMETERS = ("password", "access_token", "token")

#: Decorator for the entry points that handle secrets.
hide_secrets = sensitive_variables(*SENSITIVE_VARIABLES)
