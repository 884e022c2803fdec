"""Writing events into the outbox. Called by every domain service, inside its transaction."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from notifications import catalog
from notifications.dispatch import schedule_dispatch_on_commit
from notifications.models import Event, EventSubject

logger = logging.getLogger(__name__)


class UnknownEventType(ValueError):
    pass


class OutboxOutsideTransaction(RuntimeError):
    pass


def _jsonable(payload: Mapping[str, Any]) -> dict[str, Any]:
    # Round-trip through Django's encoder: Decimals become strings (never floats),
    # dates and datetimes ISO 8601, UUIDs strings.
    import json

    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def event_emit(
    *,
    type: str,
    payload: Mapping[str, Any],
    creditor_id: int | None = None,
    subjects: Mapping[str, int | Iterable[int] | None] | None = None,
) -> Event:
    """Append an event to the outbox, in the caller's transaction.

    Refuses to run outside a transaction: an event written on its own could describe a
    change that is later rolled back.
    """
    if not catalog.is_known(type):
        raise UnknownEventType(f"{type!r} is not in the event catalog")
    if not connection.in_atomic_block:
        raise OutboxOutsideTransaction("event_emit must be called inside transaction.atomic()")
    event = Event.objects.create(
        type=type, occurred_at=timezone.now(), creditor_id=creditor_id, payload=_jsonable(payload)
    )
    rows = []
    for kind, ids in (subjects or {}).items():
        if ids is None:
            continue
        id_list = [ids] if isinstance(ids, int) else list(ids)
        rows.extend(EventSubject(event=event, kind=kind, object_id=i) for i in set(id_list))
    if rows:
        EventSubject.objects.bulk_create(rows)
    schedule_dispatch_on_commit()
    return event


def events_emit_bulk(events: Iterable[tuple[str, int | None, Mapping[str, Any],
                                            Mapping[str, int | Iterable[int] | None] | None]]) -> list[int]:
    """event_emit for many events at once, (type, creditor_id, payload, subjects) each: exactly the
    rows event_emit would write, the events keeping the given order (ids ascending). On PostgreSQL
    the ids are drawn from the sequence and both tables are written with COPY; returns the ids."""
    import json
    import uuid

    from django.core.serializers.json import DjangoJSONEncoder

    events = list(events)
    if not events:
        return []
    if not connection.in_atomic_block:
        raise OutboxOutsideTransaction("events_emit_bulk must be called inside transaction.atomic()")
    for event_type, _creditor_id, _payload, _subjects in events:
        if not catalog.is_known(event_type):
            raise UnknownEventType(f"{event_type!r} is not in the event catalog")
    now = timezone.now()

    def subject_rows(event_id: int, subjects: Mapping[str, int | Iterable[int] | None] | None):
        for kind, ids in (subjects or {}).items():
            if ids is None:
                continue
            for object_id in {ids} if isinstance(ids, int) else set(ids):
                yield event_id, kind, object_id

    if connection.vendor != "postgresql":
        created = Event.objects.bulk_create([
            Event(type=event_type, occurred_at=now, creditor_id=creditor_id, payload=_jsonable(payload))
            for event_type, creditor_id, payload, _subjects in events])
        EventSubject.objects.bulk_create([
            EventSubject(event_id=event_id, kind=kind, object_id=object_id)
            for event, (_t, _c, _p, subjects) in zip(created, events, strict=True)
            for event_id, kind, object_id in subject_rows(event.pk, subjects)], batch_size=10000)
        schedule_dispatch_on_commit()
        return [event.pk for event in created]
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                       [Event._meta.db_table, len(events)])
        ids = sorted(row[0] for row in cursor.fetchall())
        raw = cursor.cursor
        with raw.copy(f"COPY {Event._meta.db_table} (id, uuid, type, occurred_at, creditor_id, payload, "
                      "dispatched_at, dispatch_attempts, last_error) FROM STDIN") as copy:
            for event_id, (event_type, creditor_id, payload, _subjects) in zip(ids, events, strict=True):
                copy.write_row((event_id, uuid.uuid4(), event_type, now, creditor_id,
                                json.dumps(payload, cls=DjangoJSONEncoder), None, 0, ""))
        with raw.copy(f"COPY {EventSubject._meta.db_table} (event_id, kind, object_id) FROM STDIN") as copy:
            for event_id, (_t, _c, _p, subjects) in zip(ids, events, strict=True):
                for row in subject_rows(event_id, subjects):
                    copy.write_row(row)
    schedule_dispatch_on_commit()
    return ids


# --- notifications and webhooks (issue 7) -------------------------------------------------
# Webhook endpoints, replays and test sends. Errors are Django ValidationErrors with field
# names: the admin shows them on the form, the API answers them as validation_error.

import datetime as dt  # noqa: E402

from django.core.exceptions import ValidationError  # noqa: E402
from django.db import transaction  # noqa: E402

from notifications.models import Delivery, NotificationTemplate, WebhookEndpoint  # noqa: E402

ROTATION_OVERLAP = dt.timedelta(hours=24)


def _endpoint_payload(endpoint: WebhookEndpoint, previous_status: str | None, reason: str = "") -> dict[str, Any]:
    return {"webhook_endpoint_id": endpoint.pk, "name": endpoint.name, "url": endpoint.url,
            "status": endpoint.status, "previous_status": previous_status, "reason": reason}


def endpoint_url_validate(url: str) -> None:
    from notifications.ssrf import UnsafeUrl, url_check

    try:
        url_check(url)
    except UnsafeUrl as exc:
        raise ValidationError({"url": str(exc)}) from exc


@transaction.atomic
def endpoint_create(*, name: str, url: str, creditor_id: int | None = None, description: str = "",
                    disable_after_failures: int = 100) -> WebhookEndpoint:
    """A new endpoint with a fresh `whsec_` secret (read it from the returned row, show it once)."""
    from notifications.signing import secret_generate

    endpoint_url_validate(url)
    return WebhookEndpoint.objects.create(name=name, url=url, creditor_id=creditor_id, description=description,
                                          disable_after_failures=disable_after_failures, secret=secret_generate())


@transaction.atomic
def endpoint_update(*, endpoint: WebhookEndpoint, **fields: Any) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    allowed = {"name", "url", "description", "creditor_id", "disable_after_failures"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError({f: "cannot be changed here" for f in unknown})
    if "url" in fields and fields["url"] != endpoint.url:
        endpoint_url_validate(fields["url"])
    for key, value in fields.items():
        setattr(endpoint, key, value)
    endpoint.save()
    return endpoint


@transaction.atomic
def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, overlap: dt.timedelta = ROTATION_OVERLAP,
                           now: dt.datetime | None = None) -> WebhookEndpoint:
    """New secret; the current one keeps signing (both signatures sent) until now + overlap."""
    from notifications.signing import secret_generate

    now = now or timezone.now()
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    endpoint.previous_secret, endpoint.previous_secret_expires_at = endpoint.secret, now + overlap
    endpoint.secret = secret_generate()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    event_emit(type="webhook_endpoint.secret_rotated", creditor_id=endpoint.creditor_id,
               payload={"webhook_endpoint_id": endpoint.pk, "name": endpoint.name, "url": endpoint.url,
                        "previous_valid_until": endpoint.previous_secret_expires_at})
    return endpoint


@transaction.atomic
def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.status == WebhookEndpoint.Status.DISABLED:
        return endpoint
    previous = endpoint.status
    endpoint.status, endpoint.disabled_reason, endpoint.disabled_at = (WebhookEndpoint.Status.DISABLED,
                                                                       reason[:300], timezone.now())
    endpoint.save(update_fields=["status", "disabled_reason", "disabled_at", "updated_at"])
    event_emit(type="webhook_endpoint.disabled", creditor_id=endpoint.creditor_id,
               payload=_endpoint_payload(endpoint, previous, reason))
    return endpoint


@transaction.atomic
def endpoint_enable(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.status == WebhookEndpoint.Status.ACTIVE:
        return endpoint
    previous = endpoint.status
    endpoint.status, endpoint.disabled_reason, endpoint.disabled_at = WebhookEndpoint.Status.ACTIVE, "", None
    endpoint.consecutive_failures = 0
    endpoint.save(update_fields=["status", "disabled_reason", "disabled_at", "consecutive_failures", "updated_at"])
    event_emit(type="webhook_endpoint.enabled", creditor_id=endpoint.creditor_id,
               payload=_endpoint_payload(endpoint, previous))
    return endpoint


def endpoint_ping(*, endpoint: WebhookEndpoint) -> Delivery:
    """Send a signed `webhook.ping` at once (even to a disabled endpoint) and return its delivery."""
    import json

    from notifications.sender import delivery_send_now

    now = timezone.now()
    body = json.dumps({"type": "webhook.ping", "occurred_at": now.isoformat().replace("+00:00", "Z"),
                       "payload": {"webhook_endpoint_id": endpoint.pk, "name": endpoint.name}},
                      separators=(",", ":"))
    delivery = Delivery.objects.create(channel="webhook", recipient=endpoint.url, webhook_endpoint=endpoint,
                                       creditor_id=endpoint.creditor_id, is_test=True, body_json=body,
                                       next_attempt_at=now)
    return delivery_send_now(delivery)


@transaction.atomic
def email_queue(*, to: str, subject: str, text: str, creditor_id: int | None = None) -> Delivery:
    """An email written in the caller's transaction and sent by the delivery sender once it
    commits: retried, recovered after a crash, replayable from the admin, never lost with the
    process that asked for it (the transactional outbox, for messages that no rule sends)."""
    from notifications.rules import schedule_send_on_commit

    delivery = Delivery.objects.create(channel="email", recipient=to, creditor_id=creditor_id, subject=subject[:300],
                                       body_text=text, next_attempt_at=timezone.now())
    schedule_send_on_commit()
    return delivery


REPLAYABLE = (Delivery.Status.SENT, Delivery.Status.DEAD, Delivery.Status.SKIPPED)


@transaction.atomic
def delivery_replay(*, delivery: Delivery) -> Delivery:
    """Send a delivery again, with the same content and (for webhooks) the same webhook-id."""
    from notifications.rules import schedule_send_on_commit

    delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.status not in REPLAYABLE:
        raise ValidationError({"status": f"a {delivery.status} delivery cannot be replayed"})
    if not delivery.recipient:
        raise ValidationError({"recipient": "this delivery has no recipient to send to"})
    if delivery.status == Delivery.Status.SKIPPED and not (delivery.body_json or delivery.body_text):
        raise ValidationError({"status": "this delivery was never rendered; it cannot be replayed"})
    delivery.status, delivery.next_attempt_at, delivery.dead_at = Delivery.Status.PENDING, timezone.now(), None
    delivery.attempt_base = delivery.attempts
    delivery.save(update_fields=["status", "next_attempt_at", "dead_at", "attempt_base", "updated_at"])
    schedule_send_on_commit()
    return delivery


def delivery_dead_lettered_emit(*, delivery: Delivery) -> None:
    """Tell the team (through rules on delivery.dead_lettered) that a notification failed for good."""
    event_type = delivery.event.type if delivery.event_id else ""
    if delivery.is_test or event_type.startswith("delivery."):
        return  # never a notification about a failed notification about a failed notification...
    event_emit(type="delivery.dead_lettered", creditor_id=delivery.creditor_id, payload={
        "delivery_id": delivery.pk, "rule_id": delivery.rule_id,
        "rule_name": delivery.rule.name if delivery.rule_id else "", "event_id": delivery.event_id,
        "event_type": event_type, "channel": delivery.channel, "recipient": delivery.recipient,
        "attempts": delivery.attempts, "error": delivery.last_error[:500]})


def template_test_send(*, template: NotificationTemplate, recipient: str, event: Event | None = None,
                       event_type: str | None = None, endpoint: WebhookEndpoint | None = None,
                       outbox_name: str = "") -> Delivery:
    """Render a template against a real event (or a sample payload) and send it at once."""
    from notifications.rules import Target, delivery_build, event_envelope, sample_payload
    from notifications.sender import delivery_send_now

    if template.channel == "webhook" and endpoint is None:
        raise ValidationError({"endpoint": "choose the webhook endpoint to send the test to"})
    if template.channel == "file":
        recipient = outbox_name or "test"
    elif template.channel == "webhook":
        recipient = endpoint.url
    elif not recipient:
        raise ValidationError({"recipient": "give an address to send the test to"})
    if event is not None:
        event_data, payload = event_envelope(event), event.payload
    else:
        event_type = event_type or next(iter(catalog.CATALOG))
        event_data = {"id": 0, "uuid": "00000000-0000-0000-0000-000000000000", "type": event_type,
                      "occurred_at": timezone.now().isoformat(), "creditor_id": None}
        payload = sample_payload(event_type)
    delivery = delivery_build(rule=None, template=template, channel=template.channel,
                              target=Target(address=recipient, kind="test", locale=template.locale),
                              event_data=event_data, payload=payload, endpoint=endpoint, is_test=True)
    delivery.save()
    if delivery.status != Delivery.Status.PENDING:
        return delivery
    return delivery_send_now(delivery)
