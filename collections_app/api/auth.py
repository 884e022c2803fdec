"""`Authorization: Api-Key <key>`. Keys are random, shown once, stored as SHA-256."""
from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from collections_app.models import ApiKey, Creditor

KEY_PREFIX = "enc_"


def hash_key(raw: str) -> str:
    # Keys carry 256 bits of entropy, so a fast hash is enough (no brute force possible).
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, name: str, creditor: Creditor | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never stored nor shown again."""
    while True:
        prefix = secrets.token_hex(4)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(name=name, prefix=prefix, hashed_key=hash_key(raw), creditor=creditor)
    return key, raw


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_lookup(raw: str) -> ApiKey | None:
    return ApiKey.objects.select_related("creditor").filter(hashed_key=hash_key(raw)).first()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw.strip():
            raise exceptions.AuthenticationFailed("Use the header `Authorization: Api-Key <key>`.")
        api_key = api_key_lookup(raw.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        now = timezone.now()
        if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return (None, api_key)

    def authenticate_header(self, request):
        return self.keyword


class HasApiKey(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey)
