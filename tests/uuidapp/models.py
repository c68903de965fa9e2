import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A UUID-pk custom user, to prove the app never assumes integer keys."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
