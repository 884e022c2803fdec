"""Signed webhooks against a real local HTTP receiver, verified with the standardwebhooks library."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notifications.dispatch import dispatch_pending
from notifications.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from notifications.sender import deliveries_recover_stuck, deliveries_send_due, retry_delay
from notifications.services import delivery_replay, endpoint_create, endpoint_rotate_secret
from notifications.signing import signing_secrets, webhook_headers
from tests.notifications.factories import emit, webhook_rule
from tests.processes import database_url
from tests.servers import Receiver, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def later(**kwargs) -> dt.datetime:
    return timezone.now() + dt.timedelta(**kwargs)


def test_webhook_is_received_and_verifies_with_the_standardwebhooks_library(receiver):
    # given
    _, endpoint = webhook_rule(receiver.url, event_type="payment_request.paid")
    event = emit("payment_request.paid", amount="120.50")
    # when
    dispatch_pending()
    counts = deliveries_send_due()
    # then
    assert counts["sent"] == 1 and len(receiver.requests) == 1
    request = receiver.requests[0]
    body = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert body["type"] == "payment_request.paid" and body["id"] == event.pk
    assert body["payload"]["amount"] == "120.50"
    delivery = Delivery.objects.get()
    assert request.headers["webhook-id"] == f"msg_{delivery.uuid.hex}"
    assert delivery.status == Delivery.Status.SENT
    assert delivery.last_status_code == 200 and delivery.last_latency_ms is not None
    assert '"ok": true' in delivery.last_response
    assert delivery.attempt_log.get().outcome == DeliveryAttempt.Outcome.SENT


def test_a_wrong_secret_does_not_verify(receiver):
    webhook_rule(receiver.url)
    emit()
    dispatch_pending()
    deliveries_send_due()
    other = endpoint_create(name="other", url=receiver.url)
    with pytest.raises(WebhookVerificationError):
        Webhook(other.secret).verify(receiver.requests[0].body, receiver.requests[0].headers)


def test_receiver_down_then_up_is_delivered_after_a_retry_once(allow_local):
    # given: nothing listens on the port yet
    down = Receiver(port=free_port())
    _, endpoint = webhook_rule(down.url)
    emit()
    dispatch_pending()
    # when
    first = deliveries_send_due()
    delivery = Delivery.objects.get()
    # then: a failure, retried later with backoff
    assert first["failed"] == 1 and delivery.status == Delivery.Status.PENDING
    assert delivery.next_attempt_at > timezone.now() and "Connect" in delivery.last_error
    assert deliveries_send_due()["sent"] == 0  # not due yet
    # when: the receiver is up and the retry is due
    down.start()
    try:
        assert deliveries_send_due(now=delivery.next_attempt_at)["sent"] == 1
        assert deliveries_send_due(now=later(days=4))["sent"] == 0
        # then: received once, and it verifies
        assert len(down.requests) == 1
        Webhook(endpoint.secret).verify(down.requests[0].body, down.requests[0].headers)
    finally:
        down.stop()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT and delivery.attempts == 2
    assert list(delivery.attempt_log.values_list("outcome", flat=True)) == ["failed", "sent"]
    assert WebhookEndpoint.objects.get().consecutive_failures == 0


def test_http_410_disables_the_endpoint(receiver):
    receiver.status = 410
    _, endpoint = webhook_rule(receiver.url)
    emit()
    dispatch_pending()
    deliveries_send_due()
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.DISABLED and "410" in endpoint.disabled_reason
    assert Delivery.objects.get().status == Delivery.Status.DEAD
    assert Event.objects.filter(type="webhook_endpoint.disabled").count() == 1
    assert Event.objects.filter(type="delivery.dead_lettered").count() == 1
    # and later events are not sent to it
    emit(payment_id=2)
    dispatch_pending()
    deliveries_send_due()
    assert len(receiver.requests) == 1
    assert Delivery.objects.filter(status=Delivery.Status.SKIPPED).count() == 1


def test_a_run_of_failures_disables_the_endpoint(receiver):
    receiver.status = 500
    _, endpoint = webhook_rule(receiver.url)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(disable_after_failures=2)
    emit()
    dispatch_pending()
    deliveries_send_due()
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ACTIVE and endpoint.consecutive_failures == 1
    deliveries_send_due(now=later(hours=1))
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.DISABLED and "2 failed" in endpoint.disabled_reason
    # the pending retry is not sent to a disabled endpoint
    deliveries_send_due(now=later(days=1))
    assert len(receiver.requests) == 2
    assert Delivery.objects.get().status == Delivery.Status.DEAD


def test_after_the_last_attempt_the_delivery_is_dead_lettered(receiver, settings):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    receiver.status = 503
    webhook_rule(receiver.url)
    emit()
    dispatch_pending()
    for _ in range(5):
        deliveries_send_due(now=later(days=4))
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.DEAD and delivery.attempts == 3 and len(receiver.requests) == 3
    assert [a.status_code for a in delivery.attempt_log.all()] == [503, 503, 503]
    dead = Event.objects.get(type="delivery.dead_lettered")
    assert dead.payload["delivery_id"] == delivery.pk and dead.payload["attempts"] == 3
    # a manual replay sends it again with the same webhook-id
    receiver.status = 200
    delivery_replay(delivery=delivery)
    deliveries_send_due()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT and len(receiver.requests) == 4
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1


def test_retry_schedule_backs_off_exponentially_over_about_three_days():
    import random

    delays = [retry_delay(n, rng=random.Random(7)) for n in range(1, 16)]  # 15 retries after 16 attempts
    total = sum(delays, dt.timedelta())
    assert dt.timedelta(days=2.5) < total < dt.timedelta(days=3.5)
    assert delays[0] < dt.timedelta(seconds=40) and delays[5] > delays[0] * 20
    # jitter: two deliveries that failed together do not retry at the same second
    assert retry_delay(4, rng=random.Random(1)) != retry_delay(4, rng=random.Random(2))


def test_rotation_both_secrets_verify_during_the_overlap(receiver):
    _, endpoint = webhook_rule(receiver.url)
    old_secret = endpoint.secret
    endpoint = endpoint_rotate_secret(endpoint=endpoint, overlap=dt.timedelta(hours=24))
    assert endpoint.secret != old_secret and endpoint.secret.startswith("whsec_")
    emit()
    dispatch_pending()
    deliveries_send_due()
    request = receiver.requests[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old_secret).verify(request.body, request.headers)
    Webhook(endpoint.secret).verify(request.body, request.headers)
    # after the overlap only the new secret signs
    after = later(hours=25)
    headers = webhook_headers(secrets_=signing_secrets(endpoint, now=after), msg_id="msg_x",
                              timestamp=timezone.now(), body=request.body)
    Webhook(endpoint.secret).verify(request.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(request.body, headers)


def test_ssrf_guard_refuses_private_addresses_unless_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://169.254.169.254/latest/meta-data",
                "http://10.1.2.3/", "http://[::1]/", "ftp://example.com/", "http://user:pw@127.0.0.1/"):
        with pytest.raises(ValidationError):
            endpoint_create(name="x", url=url)
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "10.0.0.0/8"]
    assert endpoint_create(name="ok", url="http://127.0.0.1:9/x").pk
    assert endpoint_create(name="lan", url="http://10.1.2.3/hook").pk


def test_ssrf_guard_is_applied_again_when_sending(receiver, settings):
    webhook_rule(receiver.url)
    settings.WEBHOOK_ALLOWED_HOSTS = []  # the allow-list changed after the endpoint was created
    emit()
    dispatch_pending()
    deliveries_send_due()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.DEAD and "WEBHOOK_ALLOWED_HOSTS" in delivery.last_error
    assert receiver.requests == []


def test_a_dispatcher_crash_before_commit_does_not_send_twice(receiver):
    # given
    webhook_rule(receiver.url)
    emit()

    class Crash(Exception):
        pass

    # when: the dispatcher's transaction dies after the handler wrote its deliveries
    with pytest.raises(Crash):
        with transaction.atomic():
            dispatch_pending()
            raise Crash
    assert Delivery.objects.count() == 0 and Event.objects.filter(dispatched_at__isnull=True).exists()
    # and the dispatcher runs again, twice, and so does the sender
    dispatch_pending()
    dispatch_pending()
    deliveries_send_due()
    deliveries_send_due(now=later(days=4))
    # then
    assert Delivery.objects.count() == 1
    assert len(receiver.requests) == 1


def _sender_subprocess() -> subprocess.Popen:
    url = database_url()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost"}
    code = ("import django; django.setup(); from notifications.sender import deliveries_send_due; "
            "print(deliveries_send_due())")
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _sender_killed_during_its_first_request(receiver) -> None:
    """A real sender process, SIGKILLed by the receiver while its first request is received."""
    holder = {}
    receiver.on_request = lambda _request: os.kill(holder["proc"].pid, signal.SIGKILL)
    holder["proc"] = proc = _sender_subprocess()
    proc.wait(timeout=120)
    receiver.on_request = None
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]


def test_a_sender_crash_between_send_and_commit_does_not_send_twice(receiver):
    """The sender process is killed by the receiver while its request is being received: the
    message left, the result was never committed. Nothing sends it a second time."""
    webhook_rule(receiver.url)
    emit()
    dispatch_pending()
    # when
    _sender_killed_during_its_first_request(receiver)
    # then: the process died mid-send, the delivery is left "sending"
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.SENDING and len(receiver.requests) == 1
    # when: senders run again, now and after the stuck delay
    deliveries_send_due(now=later(days=4))
    assert deliveries_recover_stuck() == {"resent": 0, "dead": 0}  # too recent to call it stuck
    assert deliveries_recover_stuck(now=later(minutes=11)) == {"resent": 0, "dead": 1}
    deliveries_send_due(now=later(days=4))
    # then: still one request; the delivery waits in the dead letters for a human decision
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DEAD and "interrupted" in delivery.last_error
    assert delivery.attempt_log.get().outcome == DeliveryAttempt.Outcome.INTERRUPTED
    # a replay keeps the webhook-id, so a receiver deduplicating on it is safe
    delivery_replay(delivery=delivery)
    deliveries_send_due()
    assert [r.headers["webhook-id"] for r in receiver.requests] == [f"msg_{delivery.uuid.hex}"] * 2


def test_a_sender_killed_mid_batch_sends_the_rest_of_its_batch_later_not_dead_lettered(receiver):
    """Found by the chaos run (scripts/chaos.py): a sender claims a batch, then is killed during
    its first send. Only that one message may have left; the rest of the batch never did, so the
    recovery must give those back to the next sender instead of dead-lettering them as
    "interrupted" (which lost them: nobody resends a dead letter automatically)."""
    webhook_rule(receiver.url)
    for _ in range(3):
        emit()
    dispatch_pending()
    # when: the sender process dies while its first request of the batch is being received
    _sender_killed_during_its_first_request(receiver)
    assert len(receiver.requests) == 1
    assert Delivery.objects.filter(status=Delivery.Status.SENDING).count() == 3
    in_flight = receiver.requests[0].headers["webhook-id"]
    # then: once stuck, the two that never left go back to the queue, the one in flight is unknown
    assert deliveries_recover_stuck() == {"resent": 0, "dead": 0}  # too recent to call it stuck
    assert deliveries_recover_stuck(now=later(minutes=11)) == {"resent": 2, "dead": 1}
    deliveries_send_due(now=later(minutes=11))
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 3, ids  # each message reached the receiver once
    dead = Delivery.objects.get(status=Delivery.Status.DEAD)
    assert f"msg_{dead.uuid.hex}" == in_flight and "interrupted" in dead.last_error
    sent = Delivery.objects.filter(status=Delivery.Status.SENT)
    assert sent.count() == 2 and {d.attempts for d in sent} == {1}  # the claim that never sent is not counted


def test_a_batch_slower_than_the_stuck_delay_does_not_send_what_the_recovery_took(receiver, settings):
    """A sender claims a batch, then waits on a slow receiver; meanwhile the rest of its batch
    becomes "stuck" for the recovery, which resends it through another sender. The first sender,
    once unblocked, must not send those rows a second time."""
    import threading

    from django.db import connection

    settings.NOTIFICATIONS_RESEND_INTERRUPTED = ("webhook",)
    webhook_rule(receiver.url)
    for _ in range(3):
        emit()
    dispatch_pending()
    first_request, release = threading.Event(), threading.Event()

    def slow_first(request):
        if not first_request.is_set():
            first_request.set()
            release.wait(30)

    receiver.on_request = slow_first
    outcome = {}

    def slow_sender():  # a worker of its own, with its own database connection
        try:
            outcome["counts"] = deliveries_send_due()
        finally:
            connection.close()

    worker = threading.Thread(target=slow_sender)
    worker.start()
    try:
        assert first_request.wait(30)
        # when: the rows still waiting in its batch were claimed more than STUCK_AFTER ago
        in_flight = receiver.requests[0].headers["webhook-id"]
        waiting = [d.pk for d in Delivery.objects.filter(status=Delivery.Status.SENDING)
                   if f"msg_{d.uuid.hex}" != in_flight]
        assert len(waiting) == 2
        Delivery.objects.filter(pk__in=waiting).update(sending_started_at=later(minutes=-11))
        # the recovery resends them, and another sender sends them
        assert deliveries_recover_stuck() == {"resent": 2, "dead": 0}
        assert deliveries_send_due()["sent"] == 2
    finally:
        release.set()
        worker.join(30)
    receiver.on_request = None
    # then: each delivery reached the receiver once, and all are sent
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 3, ids
    assert outcome["counts"]["sent"] == 1
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}
