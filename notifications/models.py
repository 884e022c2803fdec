from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


class Event(models.Model):
    """One row of the transactional outbox.

    Written in the same transaction as the change it describes, so an event exists if and
    only if the change was committed. The payload is a JSON snapshot taken at that moment:
    consumers never need to read domain models back (which may have changed since).
    """

    id = models.BigAutoField(primary_key=True)  # monotonic: the API feed's cursor
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(_("type"), max_length=64, db_index=True)
    occurred_at = models.DateTimeField(_("occurred at"), db_index=True)
    # Plain ids, not foreign keys: notifications is the bottom layer and knows no domain model.
    creditor_id = models.BigIntegerField(_("creditor id"), null=True, blank=True, db_index=True)
    payload = models.JSONField(_("payload"), default=dict)
    dispatched_at = models.DateTimeField(_("dispatched at"), null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            models.Index(fields=["dispatched_at", "id"], name="event_undispatched_idx",
                         condition=models.Q(dispatched_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"


class EventSubject(models.Model):
    """Which objects an event is about: drives the timelines shown in the admin."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="subjects")
    kind = models.CharField(max_length=40)
    object_id = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["kind", "object_id", "event"], name="event_subject_idx")]
        constraints = [
            models.UniqueConstraint(fields=["event", "kind", "object_id"], name="event_subject_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.object_id}"


class EventHandlerRun(models.Model):
    """Proof that a consumer handled an event: the dispatcher's de-duplication key.

    The row is inserted in the same transaction as the handler's own writes, so a handler
    whose transaction committed is never run again for the same event, and one that crashed
    leaves no row and is retried.
    """

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="handler_runs")
    handler = models.CharField(max_length=120)
    handled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "handler"], name="event_handler_once"),
        ]

    def __str__(self) -> str:
        return f"{self.handler} on {self.event_id}"
