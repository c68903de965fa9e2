from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.auth import views as auth
from django.urls import include, path

import django_connectycube

from .accounts import views as accounts
from .views import HomeView

admin.site.site_header = f"django-connectycube {django_connectycube.__version__} example site"

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("signup/", accounts.SignUpView.as_view(), name="signup"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    # The pages the reset e-mail of POST api/connectycube/password-reset/ links to. Not all of
    # django.contrib.auth.urls: its password_reset/ form mails known addresses only, inside the
    # request, so its answer time tells which addresses have an account.
    path(
        "reset/<uidb64>/<token>/",
        auth.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("reset/done/", auth.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
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
