"""Notifications: events dispatched per second into signed webhooks (local HTTP receiver) and
emails (aiosmtpd sink), against a bare loop sending the same payloads with the same clients.

Our path per event: outbox dispatch (rules, conditions, template rendering, Delivery row in a
savepoint), then the sender (claim + commit before the network call, SSRF check, Standard
Webhooks signature, POST, result + attempt log committed). The bare loop only POSTs the very
same bodies with one httpx.Client (and sends the same emails over one SMTP connection).
ratio = our time / bare loop time: the overhead of delivery guarantees and bookkeeping.
"""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = "notifications"
DESCRIPTION = "events/s into signed webhooks and SMTP emails vs a bare httpx/SMTP loop"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Receiver:
    def __init__(self):
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
            disable_nagle_algorithm = True  # else each answer waits for a delayed ACK (~40 ms)

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.count += 1
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _emit(n: int, offset: int) -> None:
    from django.db import transaction

    from notifications.services import event_emit

    for start in range(0, n, 500):
        with transaction.atomic():
            for i in range(start, min(n, start + 500)):
                event_emit(type="payment.succeeded", creditor_id=1, payload={
                    "payment_id": offset + i, "method": "transfer", "status": "succeeded", "amount": "120.50",
                    "currency": "EUR", "customer_name": f"Client {i}", "customer_email": f"c{i}@example.fr",
                    "customer_locale": "fr", "customer_tags": []})


def _ours(n: int, offset: int) -> float:
    from notifications.dispatch import dispatch_pending
    from notifications.sender import deliveries_send_due

    _emit(n, offset)
    started = time.perf_counter()
    dispatch_pending()
    while sum(deliveries_send_due(limit=100).values()):
        pass
    return time.perf_counter() - started


def run(ctx) -> dict:
    import httpx
    from aiosmtpd.controller import Controller
    from django.core.mail import EmailMultiAlternatives, get_connection
    from django.test import override_settings

    from notifications.models import Delivery, Event, NotificationRule, NotificationTemplate, WebhookEndpoint
    from notifications.services import endpoint_create

    n = ctx.scale(2000, 200)
    receiver = _Receiver()
    received_mail = []

    class SmtpHandler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            received_mail.append(len(envelope.content))
            return "250 OK"

    smtp_port = _free_port()
    smtp = Controller(SmtpHandler(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    mail_settings = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
                     "EMAIL_PORT": smtp_port, "EMAIL_USE_TLS": False, "EMAIL_HOST_USER": "",
                     "EMAIL_HOST_PASSWORD": ""}
    try:
        with override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"], **mail_settings):
            for model in (Delivery, NotificationRule, NotificationTemplate, WebhookEndpoint, Event):
                model.objects.all().delete()
            endpoint = endpoint_create(name="bench", url=receiver.url)
            hook = NotificationRule.objects.create(
                name="bench webhook", event_type="payment.succeeded", channel="webhook", recipient="webhook",
                webhook_endpoint=endpoint, conditions=[{"field": "method", "op": "=", "value": "transfer"}],
                template=NotificationTemplate.objects.create(key="bench", channel="webhook"))
            # webhooks
            ours_hook = _ours(n, 0)
            assert receiver.count == n, (receiver.count, n)
            bodies = list(Delivery.objects.filter(channel="webhook").values_list("body_json", flat=True))
            started = time.perf_counter()
            with httpx.Client(timeout=10) as client:
                for body in bodies:
                    client.post(receiver.url, content=body.encode(),
                                headers={"content-type": "application/json"}).raise_for_status()
            bare_hook = time.perf_counter() - started
            # emails
            hook.is_active = False
            hook.save()
            NotificationRule.objects.create(
                name="bench email", event_type="payment.succeeded", channel="email", recipient="customer",
                conditions=[{"field": "method", "op": "=", "value": "transfer"}],
                template=NotificationTemplate.objects.create(
                    key="bench", channel="email", subject="Virement reçu : {{ payload.amount|money:payload.currency }}",
                    body_text="Bonjour {{ payload.customer_name }}, merci pour votre virement.",
                    body_html="<p>Bonjour {{ payload.customer_name }}, merci pour votre virement.</p>"))
            ours_mail = _ours(n, n)
            assert len(received_mail) == n, (len(received_mail), n)
            mails = list(Delivery.objects.filter(channel="email").values_list("recipient", "subject", "body_text",
                                                                            "body_html"))
            started = time.perf_counter()
            with get_connection() as connection:
                for to, subject, text, html in mails:
                    message = EmailMultiAlternatives(subject, text, "bench@example.fr", [to], connection=connection)
                    message.attach_alternative(html, "text/html")
                    message.send()
            bare_mail = time.perf_counter() - started
    finally:
        smtp.stop()
        receiver.server.shutdown()
    ratio = ours_hook / bare_hook
    return {
        "ratio": ratio,
        "ratio_meaning": "webhooks: our dispatch+signed send time / bare httpx loop posting the same bodies "
                         "(lower is better; 1.0 = no overhead)",
        "figures": {
            "events": n,
            "webhook_events_per_s_ours": round(n / ours_hook, 1),
            "webhook_posts_per_s_bare_httpx": round(n / bare_hook, 1),
            "webhook_ratio": round(ratio, 2),
            "email_events_per_s_ours": round(n / ours_mail, 1),
            "email_sends_per_s_bare_smtp": round(n / bare_mail, 1),
            "email_ratio": round(ours_mail / bare_mail, 2),
        },
    }
