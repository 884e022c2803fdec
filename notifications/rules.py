"""Notification rules: from an event to Delivery rows.

`rules_handle_event` is registered with the outbox dispatcher (handler "notifications.rules").
It runs inside the dispatcher's savepoint and only writes rows: rendering is pure CPU, the
network is the sender job's business (notifications.sender). Deliveries are unique per
(rule, event, recipient), so a second run of the dispatcher cannot add a second message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from notifications import catalog
from notifications.conditions import ConditionError, conditions_match, conditions_validate
from notifications.models import Delivery, Event, NotificationRule, NotificationTemplate, WebhookEndpoint
from notifications.templating import TemplateRefused, render_template

HANDLER_NAME = "notifications.rules"
Channel = NotificationTemplate.Channel
Recipient = NotificationRule.Recipient

RECIPIENTS_BY_CHANNEL = {
    Channel.EMAIL: {Recipient.CUSTOMER, Recipient.ADDRESSES, Recipient.STAFF_GROUP},
    Channel.SMS: {Recipient.CUSTOMER, Recipient.ADDRESSES},
    Channel.WEBHOOK: {Recipient.WEBHOOK},
    Channel.FILE: {Recipient.FILE},
}
PHONE_RE = re.compile(r"^\+?[0-9 .()-]{6,20}$")


def split_addresses(text: str) -> list[str]:
    return [a.strip() for a in re.split(r"[,;\n]", text or "") if a.strip()]


def rule_validate(*, event_type: str, channel: str, template: NotificationTemplate | None, recipient: str,
                  conditions: Any, addresses: str = "", staff_group=None, webhook_endpoint=None,
                  outbox_name: str = "") -> list[dict[str, Any]]:
    """Field-level errors for a rule (admin form and API share it); returns the clean conditions."""
    errors: dict[str, str] = {}
    if not catalog.is_known(event_type):
        errors["event_type"] = _("Unknown event type %(type)s: see docs/events.md.") % {"type": event_type}
    if template is not None and template.channel != channel:
        errors["template"] = _("This template is for the %(channel)s channel.") % {"channel": template.channel}
    if recipient not in RECIPIENTS_BY_CHANNEL.get(channel, set()):
        errors["recipient"] = _("This recipient cannot be reached through this channel.")
    elif recipient == Recipient.ADDRESSES:
        found = split_addresses(addresses)
        if not found:
            errors["addresses"] = _("Give at least one address.")
        for address in found:
            if channel == Channel.EMAIL:
                try:
                    validate_email(address)
                except ValidationError:
                    errors["addresses"] = _("%(a)s is not an email address.") % {"a": address}
            elif not PHONE_RE.match(address):
                errors["addresses"] = _("%(a)s is not a phone number.") % {"a": address}
    elif recipient == Recipient.STAFF_GROUP and staff_group is None:
        errors["staff_group"] = _("Choose the staff group.")
    elif recipient == Recipient.WEBHOOK and webhook_endpoint is None:
        errors["webhook_endpoint"] = _("Choose the webhook endpoint.")
    elif recipient == Recipient.FILE and not outbox_name:
        errors["outbox_name"] = _("Name the ERP outbox folder.")
    try:
        clean = conditions_validate(conditions)
    except ConditionError as exc:
        errors["conditions"] = str(exc)
        clean = []
    if errors:
        raise ValidationError(errors)
    return clean


@dataclass(frozen=True)
class Target:
    address: str  # email, phone, URL or outbox folder; "" when it could not be found
    name: str = ""
    locale: str = ""
    kind: str = ""
    missing: str = ""  # why there is no address


def recipients_resolve(rule: NotificationRule, payload: dict[str, Any]) -> list[Target]:
    kind = rule.recipient
    if kind == Recipient.CUSTOMER:
        key = "customer_email" if rule.channel == Channel.EMAIL else "customer_phone"
        address = str(payload.get(key) or "").strip()
        return [Target(address=address, name=str(payload.get("customer_name") or ""),
                       locale=str(payload.get("customer_locale") or ""), kind=kind,
                       missing="" if address else _("the customer has no %(field)s") % {"field": key})]
    if kind == Recipient.ADDRESSES:
        return [Target(address=a, kind=kind) for a in split_addresses(rule.addresses)]
    if kind == Recipient.STAFF_GROUP:
        users = (get_user_model().objects.filter(groups=rule.staff_group, is_active=True)
                 .exclude(email="").order_by("id"))
        return [Target(address=u.email, name=u.get_full_name() or u.get_username(), kind=kind) for u in users]
    if kind == Recipient.WEBHOOK:
        return [Target(address=rule.webhook_endpoint.url, name=rule.webhook_endpoint.name, kind=kind)]
    return [Target(address=rule.outbox_name, name=rule.outbox_name, kind=kind)]


def template_variant(template: NotificationTemplate, locale: str) -> NotificationTemplate:
    """The rule's template in the recipient's language when such a variant exists."""
    if not locale or locale == template.locale:
        return template
    variant = NotificationTemplate.objects.filter(key=template.key, channel=template.channel,
                                                  locale=locale[:2]).first()
    return variant or template


def event_envelope(event: Event) -> dict[str, Any]:
    return {"id": event.pk, "uuid": str(event.uuid), "type": event.type,
            "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"), "creditor_id": event.creditor_id}


def delivery_build(*, rule: NotificationRule | None, template: NotificationTemplate, channel: str, target: Target,
                   event_data: dict[str, Any], payload: dict[str, Any], event: Event | None = None,
                   endpoint: WebhookEndpoint | None = None, creditor_id: int | None = None,
                   is_test: bool = False) -> Delivery:
    """An unsaved Delivery with its rendered content, or a skipped/dead one saying why not."""
    now = timezone.now()
    delivery = Delivery(rule=rule, event=event, channel=channel, recipient=target.address[:500],
                        webhook_endpoint=endpoint, creditor_id=creditor_id, is_test=is_test, next_attempt_at=now)
    if target.missing:
        delivery.status, delivery.last_error = Delivery.Status.SKIPPED, target.missing
        return delivery
    if endpoint is not None and endpoint.status != WebhookEndpoint.Status.ACTIVE and not is_test:
        delivery.status = Delivery.Status.SKIPPED
        delivery.last_error = _("the webhook endpoint is disabled: replay once it is enabled again")
        return delivery
    variant = template_variant(template, target.locale)
    recipient = {"name": target.name, "address": target.address, "locale": target.locale or variant.locale,
                 "kind": target.kind}
    try:
        rendered = render_template(variant, event=event_data, payload=payload, recipient=recipient,
                                   locale=recipient["locale"])
    except (TemplateRefused, Exception) as exc:  # a broken template must not block the outbox
        delivery.status, delivery.dead_at = Delivery.Status.DEAD, now
        delivery.last_error = _("template %(t)s could not be rendered: %(e)s") % {"t": variant, "e": exc}
        return delivery
    delivery.subject = rendered.subject[:300]
    delivery.body_text, delivery.body_html, delivery.body_json = rendered.body_text, rendered.body_html, rendered.body_json
    return delivery


def rules_for(event: Event):
    return (NotificationRule.objects.filter(is_active=True, event_type=event.type)
            .filter(Q(creditor_id__isnull=True) | Q(creditor_id=event.creditor_id))
            .select_related("template", "webhook_endpoint", "staff_group").order_by("id"))


def rules_handle_event(event: Event) -> None:
    """The dispatcher's handler: one Delivery per (matching rule, recipient)."""
    payload = event.payload or {}
    rows: list[Delivery] = []
    for rule in rules_for(event):
        if not conditions_match(payload, rule.conditions or [], match=rule.match):
            continue
        for target in recipients_resolve(rule, payload):
            rows.append(delivery_build(rule=rule, template=rule.template, channel=rule.channel, target=target,
                                       event_data=event_envelope(event), payload=payload, event=event,
                                       endpoint=rule.webhook_endpoint, creditor_id=event.creditor_id))
    if not rows:
        return
    # ignore_conflicts: the unique (rule, event, recipient) makes a second pass a no-op.
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    dead = [d for d in rows if d.status == Delivery.Status.DEAD]
    if dead:
        from notifications.services import delivery_dead_lettered_emit

        for delivery in Delivery.objects.filter(rule__in=[d.rule for d in dead], event=event,
                                                status=Delivery.Status.DEAD):
            delivery_dead_lettered_emit(delivery=delivery)
    schedule_send_on_commit()


def schedule_send() -> None:
    try:
        from django_q.tasks import async_task

        async_task("notifications.tasks.send_deliveries", q_options={"task_name": "send_deliveries"})
    except Exception:  # the every-minute schedule catches up
        import logging

        logging.getLogger(__name__).warning("could not enqueue the delivery sender", exc_info=True)


def schedule_send_on_commit() -> None:
    if any(entry[1] is schedule_send for entry in getattr(connection, "run_on_commit", [])):
        return
    transaction.on_commit(schedule_send)


SAMPLE_VALUES = {
    "customer_id": 42, "customer_external_ref": "C-00042", "customer_name": "Marie Dupont",
    "customer_email": "marie.dupont@example.fr", "customer_phone": "+33612345678", "customer_locale": "fr",
    "customer_tags": ["key account"], "amount": "1250.00", "amount_total": "1250.00", "amount_paid": "250.00",
    "amount_due": "1000.00", "total_amount": "1250.00", "currency": "EUR", "status": "succeeded",
    "previous_status": "processing", "method": "transfer", "reference": "FA-2026-0042", "short_reference": "K7M2QX9P",
    "pay_url": "https://pay.example.fr/pay/abc123/", "due_date": "2026-12-15", "issue_date": "2026-11-15",
    "expires_at": "2027-02-13T00:00:00Z", "invoice_external_ref": "FA-2026-0042", "invoice_ids": [12],
    "invoice_external_refs": ["FA-2026-0042"], "brand": "visa", "last4": "4242", "exp_month": 12,
    "exp_year": 2026, "days_left": 30, "reason_code": "AM04", "reason_message": "Insufficient funds",
    "reason": "customer request", "will_retry": True, "attempt": 1, "installment_count": 3, "sequence": 2,
}


def sample_payload(event_type: str) -> dict[str, Any]:
    """A plausible payload for previews when no real event of the type exists yet."""
    event_type_info = catalog.CATALOG.get(event_type)
    fields = event_type_info.fields if event_type_info else tuple(SAMPLE_VALUES)
    return {f: SAMPLE_VALUES.get(f, 7 if f.endswith("_id") else f"<{f}>") for f in fields}
