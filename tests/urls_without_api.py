"""A URLconf without the API: no password reset is offered, so nothing needs its URLs."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
