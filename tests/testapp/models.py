from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """An integer-pk custom user with the optional fields the default mapping knows."""

    phone = models.CharField(max_length=32, blank=True)
    website = models.URLField(blank=True)
    tags = models.CharField(max_length=200, blank=True, help_text="comma-separated")
    avatar = models.FileField(upload_to="avatars/", blank=True)
    bio = models.TextField(blank=True)  # not mapped: changing it alone must not push
