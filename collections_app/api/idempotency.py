"""Idempotency-Key for every POST of the API.

same key + same body   -> the stored response is replayed (header Idempotent-Replayed: true)
same key + other body  -> 422 idempotency_key_reused
same key, still running -> 409 idempotency_request_in_progress
Keys are scoped to the API key and kept IDEMPOTENCY_KEY_TTL_HOURS (24 h).

The claim row is committed before the view runs, so a concurrent duplicate sees it at once;
a server error releases the key so the client can retry.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from collections_app.models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


def idempotency_records_purge(*, now: dt.datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - dt.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.META.get(HEADER, "").strip()
        if request.method != "POST" or not key or not request.path.startswith("/api/"):
            return self.get_response(request)
        if len(key) > 255:
            return _error("invalid_idempotency_key", "Idempotency-Key is at most 255 characters.", 400)
        from collections_app.api.auth import api_key_lookup

        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw = header.partition(" ")
        api_key = api_key_lookup(raw.strip()) if scheme.lower() == "api-key" and raw.strip() else None
        if api_key is None or api_key.revoked_at is not None:
            return self.get_response(request)  # the view answers 401

        body = request.body
        request_hash = hashlib.sha256(b"POST\n" + request.path.encode() + b"\n" + body).hexdigest()
        ttl = dt.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
        record = None
        for _attempt in range(2):
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        api_key=api_key, key=key, method="POST", path=request.path[:255], request_hash=request_hash)
                break
            except IntegrityError:
                existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
                if existing is None:
                    continue  # purged between our insert and read: try again
                if existing.created_at < timezone.now() - ttl:
                    existing.delete()
                    continue
                if existing.request_hash != request_hash:
                    return _error("idempotency_key_reused",
                                  "This Idempotency-Key was used with a different request.", 422)
                if existing.state == IdempotencyRecord.State.IN_PROGRESS:
                    return _error("idempotency_request_in_progress",
                                  "A request with this Idempotency-Key is still being processed.", 409)
                response = HttpResponse(bytes(existing.response_body or b""), status=existing.response_status,
                                        content_type=existing.response_content_type or "application/json")
                response["Idempotent-Replayed"] = "true"
                return response
        if record is None:
            return _error("idempotency_request_in_progress",
                          "A request with this Idempotency-Key is still being processed.", 409)
        try:
            response = self.get_response(request)
        except Exception:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise
        if response.status_code >= 500 or getattr(response, "streaming", False):
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            return response
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            state=IdempotencyRecord.State.DONE, response_status=response.status_code,
            response_body=response.content, response_content_type=response.get("Content-Type", ""))
        return response
