"""Pages of the example site."""

from typing import Any

from django.views.generic import TemplateView

from django_connectycube.conf import app_settings


class HomeView(TemplateView):
    template_name = "home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["connectycube_api_url"] = app_settings.API_URL
        return context
