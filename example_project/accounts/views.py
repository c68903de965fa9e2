"""Plain Django account pages. None of them mentions ConnectyCube: the app mirrors every change."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views import View
from django.views.generic import CreateView, TemplateView, UpdateView

from django_connectycube.conf import app_settings
from django_connectycube.models import CubeUser

from .forms import ProfileForm, SignUpForm


class SignUpView(CreateView):
    form_class = SignUpForm
    template_name = "accounts/signup.html"
    success_url = reverse_lazy("profile")

    def form_valid(self, form: SignUpForm) -> HttpResponse:
        response = super().form_valid(form)
        login(self.request, self.object, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(self.request, "Welcome! Your ConnectyCube identity is on its way.")
        return response


class ProfileView(LoginRequiredMixin, UpdateView):
    form_class = ProfileForm
    template_name = "accounts/profile.html"
    success_url = reverse_lazy("profile")

    def get_object(self, queryset: Any = None) -> Any:
        return self.request.user

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["link"] = CubeUser.objects.filter(user=self.request.user).first()
        return context

    def form_valid(self, form: ProfileForm) -> HttpResponse:
        messages.success(self.request, "Profile saved; ConnectyCube will have it in a moment.")
        return super().form_valid(form)


class DeleteAccountView(LoginRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "accounts/delete.html")

    def post(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        logout(request)
        user.delete()
        messages.success(request, "Your account is deleted, here and on ConnectyCube.")
        return redirect("home")


class ChatIdentityView(LoginRequiredMixin, TemplateView):
    """The browser side: our login API hands the official SDK a ConnectyCube session."""

    template_name = "accounts/chat.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        sdk = settings.BASE_DIR / "static" / "vendor" / "connectycube.min.js"
        context["sdk_available"] = sdk.exists()
        context["connectycube_api_url"] = app_settings.API_URL
        return context
