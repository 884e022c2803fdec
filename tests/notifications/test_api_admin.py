"""The notifications API, the admin screens and the demo seed."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from notifications.demo import seed
from notifications.dispatch import dispatch_pending
from notifications.models import Delivery, NotificationRule, NotificationTemplate, WebhookEndpoint
from notifications.sender import deliveries_send_due
from tests.notifications.factories import emit, rule, template, webhook_rule

pytestmark = pytest.mark.django_db(transaction=True)


def test_endpoint_create_returns_the_secret_once_then_rotate_and_ping(api, receiver):
    # when
    created = api.post("/api/v1/webhook-endpoints/", {"name": "ERP", "url": receiver.url}, format="json")
    # then
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    endpoint_id = created.json()["id"]
    shown = api.get(f"/api/v1/webhook-endpoints/{endpoint_id}/").json()
    assert "secret" not in shown and secret not in str(api.get("/api/v1/webhook-endpoints/").content)
    # rotate: a new secret, the old one still signs
    rotated = api.post(f"/api/v1/webhook-endpoints/{endpoint_id}/rotate/", {"overlap_hours": 2}, format="json")
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (secret, None)
    ping = api.post(f"/api/v1/webhook-endpoints/{endpoint_id}/ping/")
    assert ping.status_code == 200 and ping.json()["status"] == "sent" and ping.json()["last_status_code"] == 200
    request = receiver.requests[0]
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "webhook.ping"
    Webhook(rotated.json()["secret"]).verify(request.body, request.headers)


def test_endpoint_create_refuses_private_urls(api, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    answer = api.post("/api/v1/webhook-endpoints/", {"name": "x", "url": "http://127.0.0.1:8000/admin/"},
                      format="json")
    assert answer.status_code == 400 and "url" in answer.json()["error"]["fields"]


def test_deliveries_read_and_replay(api, receiver):
    webhook_rule(receiver.url)
    emit()
    dispatch_pending()
    deliveries_send_due()
    listing = api.get("/api/v1/deliveries/?status=sent").json()
    delivery_id = listing["results"][0]["id"]
    detail = api.get(f"/api/v1/deliveries/{delivery_id}/").json()
    assert detail["last_status_code"] == 200 and detail["attempt_log"][0]["outcome"] == "sent"
    replay = api.post(f"/api/v1/deliveries/{delivery_id}/replay/")
    assert replay.status_code == 200 and replay.json()["status"] == "pending"
    again = api.post(f"/api/v1/deliveries/{delivery_id}/replay/")
    assert again.status_code == 400 and again.json()["error"]["code"] == "validation_error"
    deliveries_send_due()
    assert len(receiver.requests) == 2


def test_rules_crud_with_field_errors(api):
    tmpl = template("email")
    good = {"name": "Gros paiements", "event_type": "payment.succeeded", "channel": "email", "template": tmpl.pk,
            "recipient": "addresses", "addresses": "compta@example.fr",
            "conditions": [{"field": "amount", "op": ">=", "value": "1000"}]}
    created = api.post("/api/v1/notification-rules/", good, format="json")
    assert created.status_code == 201, created.content
    bad = {**good, "event_type": "payment.exploded", "conditions": [{"field": "amount", "op": "~~"}]}
    refused = api.post("/api/v1/notification-rules/", bad, format="json")
    assert refused.status_code == 400 and {"event_type", "conditions"} <= set(refused.json()["error"]["fields"])
    rule_id = created.json()["id"]
    patched = api.patch(f"/api/v1/notification-rules/{rule_id}/", {"is_active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["is_active"] is False
    assert api.delete(f"/api/v1/notification-rules/{rule_id}/").status_code == 204


def test_templates_reading_settings_are_refused_by_the_api(api):
    answer = api.post("/api/v1/notification-templates/", {"key": "leak", "channel": "email", "locale": "fr",
                                                          "subject": "{{ settings.SECRET_KEY }}"}, format="json")
    assert answer.status_code == 400 and "subject" in answer.json()["error"]["fields"]


def test_api_needs_a_key(client):
    assert client.get("/api/v1/deliveries/").status_code in (401, 403)


@pytest.fixture
def admin_client_(client):
    user = User.objects.create_superuser("boss", "boss@example.fr", "pw")
    client.force_login(user)
    return client


def test_admin_screens_preview_test_send_and_replay(admin_client_, smtp_sink, receiver):
    tmpl = template("email", subject="Reçu {{ payload.amount|money:payload.currency }}")
    rule(tmpl=tmpl)
    _, endpoint = webhook_rule(receiver.url)
    receiver.status = 410
    emit()
    dispatch_pending()
    deliveries_send_due()
    for name in ("notificationrule", "notificationtemplate", "webhookendpoint", "delivery", "deadletter"):
        assert admin_client_.get(reverse(f"admin:notifications_{name}_changelist")).status_code == 200
    dead = Delivery.objects.get(status="dead")
    assert admin_client_.get(reverse("admin:notifications_deadletter_changelist")).content.count(
        f"/{dead.pk}/change/".encode()) >= 1
    assert admin_client_.get(reverse("admin:notifications_delivery_change", args=[dead.pk])).status_code == 200
    # preview against the real recent event, then a test send to the SMTP sink
    url = reverse("admin:notifications_notificationtemplate_preview", args=[tmpl.pk])
    page = admin_client_.get(url)
    assert page.status_code == 200 and "Reçu 1" in page.content.decode()
    sent = admin_client_.post(url, {"recipient": "test@example.fr", "event_type": "payment.succeeded"})
    assert sent.status_code == 200
    assert [m[0] for m in smtp_sink.messages] == [["marie@example.fr"], ["test@example.fr"]]
    # replay from the dead letters once the receiver is back, and the endpoint re-enabled
    receiver.status = 200
    admin_client_.post(reverse("admin:notifications_webhookendpoint_changelist"),
                       {"action": "enable", "_selected_action": [endpoint.pk]})
    admin_client_.post(reverse("admin:notifications_deadletter_changelist"),
                       {"action": "replay", "_selected_action": [dead.pk]})
    deliveries_send_due()
    dead.refresh_from_db()
    assert dead.status == "sent" and len(receiver.requests) == 2


def test_admin_creates_an_endpoint_showing_its_secret_once(admin_client_, allow_local):
    answer = admin_client_.post(reverse("admin:notifications_webhookendpoint_add"),
                                {"name": "ERP", "url": "http://127.0.0.1:9/x", "description": "",
                                 "disable_after_failures": 5}, follow=True)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and endpoint.secret in answer.content.decode()


def test_demo_seed_is_idempotent(db):
    first = seed()
    second = seed()
    assert first["rules"] == 6 and second == {"templates": 0, "rules": 0, "webhook_endpoints": 0}
    assert NotificationRule.objects.filter(is_active=True).count() == 5
    assert NotificationTemplate.objects.filter(channel="email").count() == 6


def test_seed_demo_command_creates_the_notification_rules(db):
    from django.core.management import call_command

    call_command("seed_demo", "--json")
    call_command("seed_demo", "--json")
    assert NotificationRule.objects.count() == 7  # 6 of notifications, 1 of dunning (escalation team alert)
