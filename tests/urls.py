from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),  # the password reset e-mail's link
    path("api/connectycube/", include("django_connectycube.api.urls")),
]

try:  # the OpenAPI schema is an optional extra
    from drf_spectacular.views import SpectacularAPIView
except ImportError:  # pragma: no cover
    pass
else:
    urlpatterns.append(path("api/schema/", SpectacularAPIView.as_view(), name="schema"))
