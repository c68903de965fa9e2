"""django-connectycube: mirror Django users to ConnectyCube and hand frontends their sessions."""

__version__ = "0.2.0"
