"""The work behind ``password-reset/``, run by a Celery task so the answer never waits for it.

A local account gets Django's own reset e-mail (its ConnectyCube password is derived, so
resetting the Django password is all there is to do); an address only ConnectyCube knows gets
ConnectyCube's reset e-mail; any other address gets nothing. Which of the three happened is never
visible to whoever asked.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm

from django_connectycube.conf import app_settings
from django_connectycube.sync.connection import shared_client

__all__ = ["send_reset_email"]


def send_reset_email(email: str, *, domain: str, site_name: str, use_https: bool) -> str:
    """Send the right reset e-mail for this address; returns ``"local"``, ``"connectycube"``.

    ``domain``, ``site_name`` and ``use_https`` are the requesting site's, taken in the request,
    because the worker has no request to build the link from.
    """
    user_model = get_user_model()
    email_field = user_model.get_email_field_name()
    local = user_model._default_manager.filter(**{f"{email_field}__iexact": email}).exists()
    if not local:
        shared_client().reset_password(email)
        return "connectycube"
    form = PasswordResetForm({"email": email})
    if form.is_valid():
        options: dict[str, Any] = dict(app_settings.PASSWORD_RESET_OPTIONS or {})
        extra = {"site_name": site_name, **(options.pop("extra_email_context", None) or {})}
        form.save(domain_override=domain, use_https=use_https, extra_email_context=extra, **options)
    return "local"
