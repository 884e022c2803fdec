"""Demo notification setup (idempotent), called by `manage.py seed_demo`: the typical rules."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group

from notifications.models import NotificationRule, NotificationTemplate, WebhookEndpoint
from notifications.signing import secret_generate

TEMPLATES = [
    # key, channel, locale, subject, text, html
    ("transfer-received", "email", "fr", "Nous avons bien reçu votre virement de {{ payload.amount|money:payload.currency }}",
     "Bonjour {{ payload.customer_name }},\n\nNous avons bien reçu votre virement de "
     "{{ payload.amount|money:payload.currency }}. Merci !\n", "<p>Bonjour {{ payload.customer_name }},</p>"
     "<p>Nous avons bien reçu votre virement de <strong>{{ payload.amount|money:payload.currency }}</strong>. "
     "Merci !</p>"),
    ("transfer-received", "email", "en", "We received your transfer of {{ payload.amount|money:payload.currency }}",
     "Hello {{ payload.customer_name }},\n\nWe received your transfer of "
     "{{ payload.amount|money:payload.currency }}. Thank you!\n", "<p>Hello {{ payload.customer_name }},</p>"
     "<p>We received your transfer of <strong>{{ payload.amount|money:payload.currency }}</strong>. "
     "Thank you!</p>"),
    ("card-expiring", "email", "fr", "Votre carte {{ payload.brand|upper }} se termine bientôt",
     "Bonjour {{ payload.customer_name }},\n\nVotre carte se terminant par {{ payload.last4 }} expire fin "
     "{{ payload.exp_month }}/{{ payload.exp_year }}. Pensez à la mettre à jour pour vos prochaines échéances.\n",
     ""),
    ("card-expiring", "email", "en", "Your {{ payload.brand|upper }} card expires soon",
     "Hello {{ payload.customer_name }},\n\nYour card ending in {{ payload.last4 }} expires at the end of "
     "{{ payload.exp_month }}/{{ payload.exp_year }}. Please update it for your next instalments.\n", ""),
    ("payment-received-sales", "email", "fr",
     "Paiement reçu : {{ payload.customer_name }} — {{ payload.amount|money:payload.currency }}",
     "{{ payload.customer_name }} ({{ payload.customer_external_ref }}) a payé "
     "{{ payload.amount|money:payload.currency }} par {{ payload.method }}.\n", ""),
    ("refund-initiated-accounting", "email", "fr",
     "Remboursement initié : {{ payload.amount|money:payload.currency }} pour {{ payload.customer_name }}",
     "Un remboursement de {{ payload.amount|money:payload.currency }} a été initié pour "
     "{{ payload.customer_name }} (paiement #{{ payload.payment_id }}). Motif : {{ payload.reason|default:'—' }}\n",
     ""),
    ("erp-request-settled", "file", "fr", "", "", ""),
    ("erp-request-settled", "webhook", "fr", "", "", ""),
]

RULES = [
    # name, event type, conditions, template key, channel, recipient, extra
    ("Client : virement reçu", "payment.succeeded", [{"field": "method", "op": "=", "value": "transfer"}],
     "transfer-received", "email", "customer", {}),
    ("Client : carte bientôt expirée", "card.expiring", [], "card-expiring", "email", "customer", {}),
    ("Équipe commerciale : paiement reçu", "payment.succeeded", [], "payment-received-sales", "email",
     "staff_group", {"group": "sales"}),
    ("Comptabilité : remboursement initié", "refund.initiated", [], "refund-initiated-accounting", "email",
     "staff_group", {"group": "finance"}),
    ("ERP : demande de paiement soldée (fichier JSON)", "payment_request.paid", [], "erp-request-settled", "file",
     "file", {"outbox_name": "demo-erp"}),
    ("ERP : demande de paiement soldée (webhook)", "payment_request.paid", [], "erp-request-settled", "webhook",
     "webhook", {"inactive": True}),
]


def seed() -> dict[str, int]:
    created = {"templates": 0, "rules": 0, "webhook_endpoints": 0}
    templates = {}
    for key, channel, locale, subject, text, html in TEMPLATES:
        template, was_created = NotificationTemplate.objects.get_or_create(
            key=key, channel=channel, locale=locale,
            defaults={"subject": subject, "body_text": text, "body_html": html})
        created["templates"] += was_created
        templates.setdefault((key, channel), template)
    # The demo ERP listens locally; the rule stays inactive until someone runs a receiver there
    # (and lists localhost in WEBHOOK_ALLOWED_HOSTS). Created directly: no DNS check for a demo row.
    endpoint, was_created = WebhookEndpoint.objects.get_or_create(
        name="ERP de démonstration",
        defaults={"url": "http://localhost:8001/webhooks/encaisse", "secret": secret_generate(),
                  "description": "Demo receiver; start one and activate the webhook rule to try it."})
    created["webhook_endpoints"] += was_created
    for name, event_type, conditions, key, channel, recipient, extra in RULES:
        if NotificationRule.objects.filter(name=name).exists():
            continue
        group = Group.objects.get_or_create(name=extra["group"])[0] if "group" in extra else None
        NotificationRule.objects.create(
            name=name, event_type=event_type, conditions=conditions, template=templates[(key, channel)],
            channel=channel, recipient=recipient, staff_group=group, outbox_name=extra.get("outbox_name", ""),
            webhook_endpoint=endpoint if recipient == "webhook" else None, is_active=not extra.get("inactive"))
        created["rules"] += 1
    return created
