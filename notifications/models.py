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

    # Not indexed alone: event_subject_unique (event, kind, object_id) starts with it.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="subjects", db_index=False)
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


class WebhookEndpoint(models.Model):
    """An integrator's URL that receives signed JSON (Standard Webhooks)."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DISABLED = "disabled", _("Disabled")

    name = models.CharField(_("name"), max_length=120)
    url = models.URLField(_("URL"), max_length=500)
    description = models.TextField(_("description"), blank=True)
    # A plain id, like Event.creditor_id: null means "every creditor".
    creditor_id = models.BigIntegerField(_("creditor id"), null=True, blank=True, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    disabled_reason = models.CharField(_("disabled because"), max_length=300, blank=True)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    # Both secrets are needed in clear to sign: they cannot be hashed like API keys.
    secret = models.CharField(_("signing secret"), max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(_("previous secret valid until"), null=True, blank=True,
                                                      editable=False)
    disable_after_failures = models.PositiveIntegerField(
        _("disable after consecutive failures"), default=100,
        help_text=_("The endpoint is disabled after this many failed attempts in a row (and at once on HTTP 410)."))
    consecutive_failures = models.PositiveIntegerField(_("consecutive failures"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.name


class NotificationTemplate(models.Model):
    """What is sent, per channel and locale. Variants of one message share a key."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")
        WEBHOOK = "webhook", _("Webhook (signed JSON)")
        FILE = "file", _("JSON file")

    key = models.SlugField(_("key"), max_length=80,
                           help_text=_("Variants of the same message in other locales share this key."))
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    locale = models.CharField(_("locale"), max_length=8, default="fr")
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    body_text = models.TextField(_("text body"), blank=True)
    body_html = models.TextField(_("HTML body"), blank=True)
    body_json = models.TextField(_("JSON body"), blank=True,
                                 help_text=_("Webhooks and files: a template that renders JSON. Empty: the "
                                             "event as documented in docs/events.md."))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key", "channel", "locale"]
        verbose_name = _("notification template")
        verbose_name_plural = _("notification templates")
        constraints = [models.UniqueConstraint(fields=["key", "channel", "locale"], name="template_variant_unique")]

    def __str__(self) -> str:
        return f"{self.key} ({self.get_channel_display()}, {self.locale})"


class NotificationRule(models.Model):
    """When an event of a type matches the conditions, send the template to the recipients."""

    class Match(models.TextChoices):
        ALL = "all", _("All conditions")
        ANY = "any", _("Any condition")

    class Recipient(models.TextChoices):
        CUSTOMER = "customer", _("The customer of the event")
        ADDRESSES = "addresses", _("Fixed addresses or phone numbers")
        STAFF_GROUP = "staff_group", _("A staff group")
        WEBHOOK = "webhook", _("A webhook endpoint")
        FILE = "file", _("A JSON file outbox (ERP)")

    name = models.CharField(_("name"), max_length=160)
    is_active = models.BooleanField(_("active"), default=True)
    event_type = models.CharField(_("event type"), max_length=64, db_index=True)
    creditor_id = models.BigIntegerField(_("creditor id"), null=True, blank=True,
                                         help_text=_("Empty: events of every creditor."))
    match = models.CharField(_("match"), max_length=8, choices=Match.choices, default=Match.ALL)
    conditions = models.JSONField(
        _("conditions"), default=list, blank=True,
        help_text=_('A list of {"field": "amount", "op": ">=", "value": "1000"}; operators: = != < <= > >= '
                    'in contains. Empty: every event of the type.'))
    channel = models.CharField(_("channel"), max_length=16, choices=NotificationTemplate.Channel.choices)
    template = models.ForeignKey(NotificationTemplate, on_delete=models.PROTECT, related_name="rules",
                                 verbose_name=_("template"))
    recipient = models.CharField(_("recipient"), max_length=16, choices=Recipient.choices)
    addresses = models.TextField(_("addresses"), blank=True,
                                 help_text=_("Email addresses or phone numbers, one per line or comma-separated."))
    staff_group = models.ForeignKey("auth.Group", on_delete=models.PROTECT, null=True, blank=True,
                                    verbose_name=_("staff group"))
    webhook_endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="rules", verbose_name=_("webhook endpoint"))
    outbox_name = models.SlugField(_("ERP outbox folder"), max_length=80, blank=True,
                                   help_text=_("JSON files are written to OUTBOX_DIR/<this name>/."))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event_type", "name"]
        verbose_name = _("notification rule")
        verbose_name_plural = _("notification rules")
        indexes = [models.Index(fields=["event_type", "is_active"], name="rule_event_active_idx")]

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    """One message to one recipient, for one rule and one event: the sender job's unit of work.

    Unique per (rule, event, recipient): the dispatcher may run twice, a delivery is written once.
    The content is rendered when the delivery is written, so a retry or a replay sends exactly
    what was first decided, even if the template changed since.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DEAD = "dead", _("Failed for good (dead letter)")
        SKIPPED = "skipped", _("Skipped")

    id = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    rule = models.ForeignKey(NotificationRule, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries")
    channel = models.CharField(_("channel"), max_length=16, choices=NotificationTemplate.Channel.choices)
    recipient = models.CharField(_("recipient"), max_length=500)
    webhook_endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.SET_NULL, null=True, blank=True,
                                         related_name="deliveries")
    creditor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    is_test = models.BooleanField(_("test send"), default=False)
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    body_text = models.TextField(_("text"), blank=True)
    body_html = models.TextField(_("HTML"), blank=True)
    body_json = models.TextField(_("JSON"), blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    attempt_base = models.PositiveIntegerField(default=0, editable=False)  # attempts before the last replay
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    # Committed before the network call: a row still "sending" after a crash is recognised as such.
    attempt_id = models.UUIDField(null=True, blank=True, editable=False)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(_("last status code"), null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(_("last latency (ms)"), null=True, blank=True)
    last_response = models.TextField(_("last response excerpt"), blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    dead_at = models.DateTimeField(_("dead-lettered at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(fields=["rule", "event", "recipient"], name="delivery_once_per_rule_event_recipient"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at", "id"], name="delivery_due_idx",
                         condition=models.Q(status="pending")),
            models.Index(fields=["sending_started_at"], name="delivery_sending_idx",
                         condition=models.Q(status="sending")),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.recipient} #{self.pk}"


class DeadLetter(Delivery):
    """The dead-letter view: deliveries that failed for good (an admin changelist of its own)."""

    class Meta:
        proxy = True
        verbose_name = _("dead letter")
        verbose_name_plural = _("dead letters")


class DeliveryAttempt(models.Model):
    """The delivery log: one row per try, with what the other side answered."""

    class Outcome(models.TextChoices):
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed, will retry")
        DEAD = "dead", _("Failed for good")
        INTERRUPTED = "interrupted", _("Interrupted (crash while sending)")

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField(_("attempt"))
    attempt_id = models.UUIDField()
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    status_code = models.PositiveIntegerField(_("status code"), null=True, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    response_excerpt = models.TextField(_("response excerpt"), blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        constraints = [models.UniqueConstraint(fields=["attempt_id"], name="delivery_attempt_once")]

    def __str__(self) -> str:
        return f"#{self.delivery_id} attempt {self.number}: {self.outcome}"
