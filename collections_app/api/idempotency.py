"""Idempotency-Key for every POST of the API.

same key + same body   -> the stored response is replayed (header Idempotent-Replayed: true)
same key + other body  -> 422 idempotency_key_reused
same key, still running -> 409 idempotency_request_in_progress
Keys are scoped to the API key and kept IDEMPOTENCY_KEY_TTL_HOURS (24 h).

The claim row is committed before the view runs, so a concurrent duplicate sees it at once;
a server error releases the key so the client can retry.

On PostgreSQL the view runs in one transaction with the stored response, holding the claim
row's lock (FOR UPDATE): the work and the key's "done" are committed together or not at all.
A claim left "in progress" whose lock nobody holds was therefore left by a request that died
(a web worker killed by its timeout, a crashed node) without committing anything, and the
client's retry with the same key runs it, instead of being told "in progress" for a day. Views
with an effect outside the database (a webhook ping) are marked `idempotency_atomic = False`
and keep the plain claim: their key stays in progress if the worker dies mid-way.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils import timezone

from collections_app.models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


def idempotency_records_purge(*, now: dt.datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - dt.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body or b""), status=record.response_status,
                            content_type=record.response_content_type or "application/json")
    response["Idempotent-Replayed"] = "true"
    return response


def _store(record: IdempotencyRecord, response) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyRecord.State.DONE, response_status=response.status_code,
        response_body=response.content, response_content_type=response.get("Content-Type", ""))


def _in_progress() -> JsonResponse:
    return _error("idempotency_request_in_progress",
                  "A request with this Idempotency-Key is still being processed.", 409)


def view_is_atomic(path: str) -> bool:
    """Whether the view of `path` can run in one transaction with its stored response: all of
    the API but the views (or viewset actions) marked idempotency_atomic = False."""
    try:
        func = resolve(path).func
    except Resolver404:
        return True
    cls = getattr(func, "cls", None)
    action = (getattr(func, "actions", None) or {}).get("post")
    handler = getattr(cls, action, None) if cls is not None and action else None
    return bool(getattr(handler, "idempotency_atomic", getattr(cls or func, "idempotency_atomic", True)))


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
        # Taking over a dead request's claim needs its lock to tell it from a live one.
        atomic = connection.features.has_select_for_update_nowait and view_is_atomic(request.path_info)
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
                if existing.state == IdempotencyRecord.State.DONE:
                    return _replay(existing)
                if not atomic:
                    return _in_progress()
                record = existing  # in progress, or abandoned by a dead request: the lock tells
                break
        if record is None:
            return _in_progress()
        if atomic:
            return self._run_atomic(request, record)
        try:
            response = self.get_response(request)
        except Exception:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise
        if response.status_code >= 500 or getattr(response, "streaming", False):
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            return response
        _store(record, response)
        return response

    def _run_atomic(self, request, record: IdempotencyRecord):
        """The view and its stored response in one transaction, under the claim row's lock."""
        release = False
        try:
            with transaction.atomic():
                try:
                    with transaction.atomic():  # a savepoint: a refused lock leaves the transaction usable
                        locked = IdempotencyRecord.objects.select_for_update(nowait=True).filter(pk=record.pk).first()
                except DatabaseError:
                    return _in_progress()  # a live request holds it
                if locked is None:  # released by its server error a moment ago
                    return _error("idempotency_request_in_progress",
                                  "A request with this Idempotency-Key has just failed; send it again.", 409)
                if locked.state == IdempotencyRecord.State.DONE:
                    return _replay(locked)  # a concurrent duplicate finished since we read the claim
                response = self.get_response(request)
                if response.status_code >= 500:
                    transaction.set_rollback(True)  # none of a failed request's work is kept
                    release = True
                    return response
                if getattr(response, "streaming", False):
                    release = True  # nothing to store: the key is released, the work kept
                    return response
                try:
                    with transaction.atomic():
                        _store(record, response)
                except DatabaseError:
                    # the view answered an error after a failed statement (the transaction is
                    # unusable): nothing of it is kept, and the key is free for a retry
                    transaction.set_rollback(True)
                    release = True
                return response
        except Exception:
            release = True
            raise
        finally:
            if release:
                IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS).delete()
