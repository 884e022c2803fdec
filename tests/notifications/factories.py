"""Helpers for notification tests: events through the real outbox, rules through the models."""
from __future__ import annotations

from django.db import transaction

from notifications.models import NotificationRule, NotificationTemplate
from notifications.services import endpoint_create, event_emit

PAYMENT = {"payment_id": 1, "method": "sepa_dd", "status": "succeeded", "previous_status": "processing",
           "amount": "1500.00", "currency": "EUR", "payment_request_id": 9, "customer_id": 3,
           "customer_name": "Marie Dupont", "customer_email": "marie@example.fr", "customer_phone": "+33612345678",
           "customer_locale": "fr", "customer_tags": ["key account"]}


def emit(type_: str = "payment.succeeded", creditor_id: int | None = 1, **payload):
    with transaction.atomic():
        return event_emit(type=type_, creditor_id=creditor_id, payload={**PAYMENT, **payload})


def template(channel: str = "email", key: str | None = None, locale: str = "fr", **fields) -> NotificationTemplate:
    if key is None:
        template.counter += 1
        key = f"t{template.counter}"
    defaults = {"email": {"subject": "Paiement de {{ payload.amount|money:payload.currency }}",
                          "body_text": "Bonjour {{ payload.customer_name }}, merci.",
                          "body_html": "<p>Bonjour {{ payload.customer_name }}</p>"},
                "sms": {"body_text": "Paiement {{ payload.amount }} {{ payload.currency }} recu."},
                "webhook": {}, "file": {}}[channel]
    return NotificationTemplate.objects.create(key=key, channel=channel, locale=locale, **{**defaults, **fields})


template.counter = 0


def rule(*, channel: str = "email", recipient: str = "customer", event_type: str = "payment.succeeded",
         tmpl: NotificationTemplate | None = None, **fields) -> NotificationRule:
    return NotificationRule.objects.create(name=f"{event_type} {channel}", event_type=event_type, channel=channel,
                                           recipient=recipient, template=tmpl or template(channel), **fields)


def webhook_rule(url: str, **fields):
    endpoint = endpoint_create(name="ERP", url=url)
    return rule(channel="webhook", recipient="webhook", webhook_endpoint=endpoint, **fields), endpoint
