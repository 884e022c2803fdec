"""The sender job: claims due deliveries and sends them.

Crash safety. A delivery is claimed in its own short transaction: status "sending", a new
attempt_id and attempts+1 are committed *before* the network call; the result is recorded
afterwards only if the row still carries that attempt_id. Deliveries are claimed by batches:
the claim records its time in next_attempt_at and leaves sending_started_at empty; right before
its own network call each row is checked to still carry that attempt_id and its
sending_started_at is set to that moment (`delivery_sending_begin`): a batch slower than
STUCK_AFTER never sends a row that the recovery below has already resolved. A process that
dies between the claim and the result leaves the row in "sending". `deliveries_recover_stuck`
finds such rows once they were claimed (or their send started) longer ago than any send could
last. A row whose send never began (the rest of a dead sender's batch) has not left: it goes
back to "pending" and is sent by the next run. A row whose send began is resolved per channel:

- file: written again (same file name, atomic replace: a second write changes nothing);
- email, SMS, webhook: the outcome is unknown (the message may have left), so the row is
  NOT sent again automatically; it goes to the dead letters marked "interrupted", and a
  human replays it if the recipient did not get it. Webhook replays keep the same
  `webhook-id`, so a receiver that deduplicates on it (as Standard Webhooks asks) is safe.
  settings.NOTIFICATIONS_RESEND_INTERRUPTED lists the channels to resend instead
  (at-least-once), e.g. ("file", "webhook") for receivers known to deduplicate.

Retries: exponential backoff with jitter over about three days (`retry_delay`), then the
dead letters. Every attempt is logged (DeliveryAttempt) with status code, latency and an
excerpt of the answer.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import time
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from notifications import channels
from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint

logger = logging.getLogger(__name__)

Status = Delivery.Status
MAX_ATTEMPTS = 16
RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 14 * 3600
STUCK_AFTER = dt.timedelta(minutes=10)  # far longer than any send may last (HTTP timeout 10 s, SMTP 30 s)


def max_attempts() -> int:
    return int(getattr(settings, "NOTIFICATIONS_MAX_ATTEMPTS", MAX_ATTEMPTS))


def retry_delay(attempt: int, *, rng: random.Random | None = None) -> dt.timedelta:
    """Wait after the attempt-th failure: 30 s doubling up to 14 h, ±20 % jitter.

    With 16 attempts the last retry comes about three days after the first try.
    The jitter spreads retries of many deliveries that failed together (a receiver's outage)."""
    base = min(RETRY_BASE_SECONDS * 2 ** (attempt - 1), RETRY_CAP_SECONDS)
    return dt.timedelta(seconds=base * (rng or random).uniform(0.8, 1.2))


def deliveries_claim(*, limit: int = 50, now: dt.datetime | None = None, ids: list[int] | None = None) -> list[Delivery]:
    """Atomically move due deliveries to "sending" and commit, before anything is sent."""
    now = now or timezone.now()
    claimed_at = timezone.now()  # the real clock, like delivery_sending_begin's: the recovery measures from it
    with transaction.atomic():
        qs = (Delivery.objects.select_for_update(skip_locked=True, of=("self",)).select_related("webhook_endpoint")
              .filter(status=Status.PENDING))
        qs = qs.filter(pk__in=ids) if ids is not None else qs.filter(next_attempt_at__lte=now)
        rows = list(qs.order_by("next_attempt_at", "id")[:limit])
        for d in rows:
            # No sending_started_at yet: it is set when this row's own send begins, so that a row
            # of a dead sender's batch that never left can be told from one whose outcome is unknown.
            d.status, d.attempt_id, d.sending_started_at = Status.SENDING, uuid.uuid4(), None
            d.next_attempt_at = claimed_at
            d.attempts += 1
        Delivery.objects.bulk_update(rows, ["status", "attempt_id", "sending_started_at", "next_attempt_at",
                                            "attempts"])
    return rows


def delivery_sending_begin(*, delivery: Delivery) -> bool:
    """Claim-then-check, right before the network call: False when the row is no longer this
    attempt's (the recovery took it while it waited in its batch), and it must not be sent."""
    started_at = timezone.now()  # the real clock: STUCK_AFTER measures how long the call has lasted
    if not Delivery.objects.filter(pk=delivery.pk, attempt_id=delivery.attempt_id, status=Status.SENDING).update(
            sending_started_at=started_at):
        return False
    delivery.sending_started_at = started_at
    return True


def delivery_send(delivery: Delivery, *, client=None, mail_connection=None,
                  now: dt.datetime | None = None) -> channels.SendResult:
    """The network part: no transaction is open while the other side is called."""
    now = now or timezone.now()
    endpoint = delivery.webhook_endpoint
    if endpoint is not None and endpoint.status != WebhookEndpoint.Status.ACTIVE and not delivery.is_test:
        return channels.SendResult(ok=False, permanent=True, error="the webhook endpoint is disabled")
    if delivery.channel == "webhook":
        if client is None:
            with channels.http_client() as own:
                return channels.send_webhook(delivery, client=own, now=now)
        return channels.send_webhook(delivery, client=client, now=now)
    if delivery.channel == "email":
        return channels.send_email(delivery, connection=mail_connection)
    if delivery.channel == "sms":
        return channels.send_sms(delivery)
    if delivery.channel == "file":
        return channels.send_file(delivery)
    return channels.SendResult(ok=False, permanent=True, error=f"unknown channel {delivery.channel}")


@transaction.atomic
def delivery_record(*, delivery: Delivery, result: channels.SendResult, now: dt.datetime | None = None,
                    rng: random.Random | None = None) -> Delivery | None:
    """Store the outcome of one attempt; ignored when the attempt is no longer the current one."""
    now = now or timezone.now()
    row = (Delivery.objects.select_for_update().filter(pk=delivery.pk, attempt_id=delivery.attempt_id,
                                                       status=Status.SENDING).first())
    if row is None:
        return None
    attempts_left = row.attempts - row.attempt_base < max_attempts()
    if result.ok:
        outcome, row.status, row.sent_at = DeliveryAttempt.Outcome.SENT, Status.SENT, now
    elif result.permanent or not attempts_left:
        outcome, row.status, row.dead_at = DeliveryAttempt.Outcome.DEAD, Status.DEAD, now
    else:
        outcome, row.status = DeliveryAttempt.Outcome.FAILED, Status.PENDING
        row.next_attempt_at = now + retry_delay(row.attempts, rng=rng)
    DeliveryAttempt.objects.create(
        delivery=row, number=row.attempts, attempt_id=row.attempt_id, started_at=row.sending_started_at or now,
        finished_at=now, outcome=outcome, status_code=result.status_code, latency_ms=result.latency_ms,
        response_excerpt=result.response_excerpt[:channels.EXCERPT], error=result.error[:4000])
    row.last_status_code, row.last_latency_ms = result.status_code, result.latency_ms
    row.last_response, row.last_error = result.response_excerpt[:channels.EXCERPT], result.error[:4000]
    if result.provider_message_id:
        row.provider_message_id = result.provider_message_id
    row.save(update_fields=["status", "sent_at", "dead_at", "next_attempt_at", "last_status_code", "last_latency_ms",
                            "last_response", "last_error", "provider_message_id", "updated_at"])
    if row.webhook_endpoint_id and not row.is_test:
        _endpoint_account(row, result, known=delivery.webhook_endpoint)
    if row.status == Status.DEAD:
        from notifications.services import delivery_dead_lettered_emit

        delivery_dead_lettered_emit(delivery=row)
    return row


def _endpoint_account(row: Delivery, result: channels.SendResult, known: WebhookEndpoint | None = None) -> None:
    from notifications.services import endpoint_disable

    if result.ok and known is not None and known.consecutive_failures == 0:
        return  # the common case: nothing to reset, no query
    if result.ok:
        WebhookEndpoint.objects.filter(pk=row.webhook_endpoint_id, consecutive_failures__gt=0).update(
            consecutive_failures=0)
        return
    if result.error == "the webhook endpoint is disabled":
        return
    WebhookEndpoint.objects.filter(pk=row.webhook_endpoint_id).update(
        consecutive_failures=F("consecutive_failures") + 1)
    endpoint = WebhookEndpoint.objects.get(pk=row.webhook_endpoint_id)
    if endpoint.status != WebhookEndpoint.Status.ACTIVE:
        return
    if result.disable_endpoint:
        endpoint_disable(endpoint=endpoint, reason=f"the receiver answered HTTP {result.status_code} (gone)")
    elif endpoint.consecutive_failures >= endpoint.disable_after_failures:
        endpoint_disable(endpoint=endpoint,
                         reason=f"{endpoint.consecutive_failures} failed deliveries in a row")


def deliveries_send_due(*, limit: int = 50, max_batches: int | None = None, time_budget: float | None = None,
                        now: dt.datetime | None = None) -> dict[str, int]:
    """Claim and send due deliveries batch after batch; returns counts per outcome."""
    counts = {"sent": 0, "failed": 0, "dead": 0}
    started, batches = time.monotonic(), 0
    with channels.http_client() as client:
        mail = None
        try:
            while max_batches is None or batches < max_batches:
                batches += 1
                rows = deliveries_claim(limit=limit, now=now)
                if not rows:
                    break
                if mail is None and any(d.channel == "email" for d in rows):
                    mail = channels.email_connection()
                    mail.open()
                for delivery in rows:
                    if not delivery_sending_begin(delivery=delivery):
                        counts["taken_over"] = counts.get("taken_over", 0) + 1
                        continue
                    result = delivery_send(delivery, client=client, mail_connection=mail)
                    row = delivery_record(delivery=delivery, result=result)
                    if row is not None:
                        key = {Status.SENT: "sent", Status.DEAD: "dead"}.get(row.status, "failed")
                        counts[key] += 1
                if len(rows) < limit or (time_budget and time.monotonic() - started > time_budget):
                    break
        finally:
            if mail is not None:
                mail.close()
    return counts


def delivery_send_now(delivery: Delivery) -> Delivery:
    """Test sends, pings and replays from the admin: claim this one delivery and send it at once."""
    rows = deliveries_claim(limit=1, ids=[delivery.pk])
    if rows and delivery_sending_begin(delivery=rows[0]):
        delivery_record(delivery=rows[0], result=delivery_send(rows[0]))
    return Delivery.objects.get(pk=delivery.pk)


@transaction.atomic
def deliveries_recover_stuck(*, older_than: dt.timedelta = STUCK_AFTER, now: dt.datetime | None = None) -> dict[str, int]:
    """Resolve deliveries left in "sending" by a crashed sender (see the module docstring)."""
    now = now or timezone.now()
    resend = set(getattr(settings, "NOTIFICATIONS_RESEND_INTERRUPTED", ("file",)))
    counts = {"resent": 0, "dead": 0}
    # Claimed by a sender that died before their own send began: nothing left, send them again.
    never_began = list(Delivery.objects.select_for_update(skip_locked=True, of=("self",))
                       .filter(status=Status.SENDING, sending_started_at__isnull=True,
                               next_attempt_at__lt=now - older_than))
    for row in never_began:
        row.status, row.next_attempt_at, row.attempt_id = Status.PENDING, now, None
        row.attempts = max(row.attempts - 1, row.attempt_base)  # that attempt never happened
        row.save(update_fields=["status", "next_attempt_at", "attempt_id", "attempts", "updated_at"])
        counts["resent"] += 1
    rows = list(Delivery.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status=Status.SENDING, sending_started_at__lt=now - older_than))
    for row in rows:
        DeliveryAttempt.objects.get_or_create(attempt_id=row.attempt_id, defaults={
            "delivery": row, "number": row.attempts, "started_at": row.sending_started_at or now,
            "outcome": DeliveryAttempt.Outcome.INTERRUPTED,
            "error": "the sender stopped during this attempt; the outcome is unknown"})
        if row.channel in resend:
            row.status, row.next_attempt_at = Status.PENDING, now
            row.last_error = "interrupted while sending: sent again"
            counts["resent"] += 1
        else:
            row.status, row.dead_at = Status.DEAD, now
            row.last_error = ("interrupted while sending: the message may have been delivered, so it is not sent "
                              "again automatically; replay it if the recipient did not get it")
            counts["dead"] += 1
        row.save(update_fields=["status", "next_attempt_at", "dead_at", "last_error", "updated_at"])
        if row.status == Status.DEAD:
            from notifications.services import delivery_dead_lettered_emit

            delivery_dead_lettered_emit(delivery=row)
    return counts
