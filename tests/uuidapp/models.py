import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A UUID-pk custom user, to prove the app never assumes integer keys."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    phone = models.CharField(max_length=32, blank=True)
    website = models.URLField(blank=True)
    tags = models.CharField(max_length=200, blank=True, help_text="comma-separated")
    avatar = models.FileField(upload_to="avatars/", blank=True)
    bio = models.TextField(blank=True)
