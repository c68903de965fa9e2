from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from .accounts import views as accounts
from .views import HomeView

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("signup/", accounts.SignUpView.as_view(), name="signup"),
    path("", include("django.contrib.auth.urls")),  # log in/out, password reset pages
    path("profile/", accounts.ProfileView.as_view(), name="profile"),
    path("profile/delete/", accounts.DeleteAccountView.as_view(), name="delete-account"),
    path("chat/", accounts.ChatIdentityView.as_view(), name="chat"),
    path("api/connectycube/", include("django_connectycube.api.urls")),
    path("admin/", admin.site.urls),
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
]

# The OpenAPI schema, when drf-spectacular is installed (django-connectycube[openapi]).
try:
    from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
except ImportError:  # pragma: no cover
    pass
else:
    urlpatterns += [
        path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
        path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    ]
