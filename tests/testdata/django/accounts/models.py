"""The APIToken model of the Django application tokenauth imports from."""

import secrets

from django.conf import settings
from django.db import models


def new_key():
    return secrets.token_hex(32)


class APIToken(models.Model):
    """A named bearer token; the 64-character hex key is stored in plain text."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key = models.CharField(max_length=64, unique=True, default=new_key)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
