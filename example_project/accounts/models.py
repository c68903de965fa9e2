from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The example site's user: Django's, plus the fields ConnectyCube profiles show."""

    phone = models.CharField(max_length=32, blank=True)
    website = models.URLField(blank=True)
    avatar = models.FileField(upload_to="avatars/", blank=True)
