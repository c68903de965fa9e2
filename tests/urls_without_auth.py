"""A URLconf that mounts the API but not ``django.contrib.auth.urls`` (connectycube.W010)."""

from django.urls import include, path

urlpatterns = [path("api/connectycube/", include("django_connectycube.api.urls"))]
