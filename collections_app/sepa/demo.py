"""Demo data for collections (issue 5), called by collections_app.demo.seed(): the demo
creditor's collection settings and retry policies, a card instalment plan, and the
notification rules of direct-debit pre-notification, retries and uncollectable instalments.
Idempotent."""
from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import Group
from django.utils import timezone

from collections_app import services
from collections_app.gateways.sandbox import tokenize
from collections_app.models import Creditor, Customer, InstallmentPlan, PaymentMethod
from collections_app.retries.models import DEFAULT_RETRY_CODES, RetryPolicy
from collections_app.sepa.models import CollectionSettings
from notifications.models import NotificationRule, NotificationTemplate

TEMPLATES = [
    ("direct-debit-upcoming", "fr",
     "Prélèvement de {{ payload.amount|money:payload.currency }} le {{ payload.collection_date }}",
     "Bonjour {{ payload.customer_name }},\n\nNous prélèverons {{ payload.amount|money:payload.currency }} le "
     "{{ payload.collection_date }} sur votre compte se terminant par {{ payload.iban_last4 }} (mandat "
     "{{ payload.mandate_reference }}, créancier {{ payload.creditor_identifier }}).\n"),
    ("direct-debit-upcoming", "en",
     "Direct debit of {{ payload.amount|money:payload.currency }} on {{ payload.collection_date }}",
     "Hello {{ payload.customer_name }},\n\nWe will collect {{ payload.amount|money:payload.currency }} on "
     "{{ payload.collection_date }} from your account ending in {{ payload.iban_last4 }} (mandate "
     "{{ payload.mandate_reference }}, creditor {{ payload.creditor_identifier }}).\n"),
    ("payment-retry", "fr", "Nouvelle tentative de paiement le {{ payload.retry_date }}",
     "Bonjour {{ payload.customer_name }},\n\nLe paiement de {{ payload.amount|money:payload.currency }} n'a pas "
     "abouti ({{ payload.reason_meaning }}). Nous le présenterons à nouveau le {{ payload.retry_date }}.\n"),
    ("payment-retry", "en", "We will try your payment again on {{ payload.retry_date }}",
     "Hello {{ payload.customer_name }},\n\nThe payment of {{ payload.amount|money:payload.currency }} did not go "
     "through ({{ payload.reason_meaning }}). We will present it again on {{ payload.retry_date }}.\n"),
    ("instalment-uncollectable", "fr", "Échéance impayée : {{ payload.customer_name }}",
     "L'échéance {{ payload.sequence }} du plan #{{ payload.instalment_plan_id }} de {{ payload.customer_name }} "
     "({{ payload.amount|money:payload.currency }}) n'a pas pu être encaissée après {{ payload.attempts }} "
     "tentative(s) : {{ payload.reason_code }} {{ payload.reason_meaning }}.\n"),
]

RULES = [
    ("Client : prélèvement à venir", "direct_debit.upcoming", [], "direct-debit-upcoming", "customer", None),
    ("Client : nouvelle tentative de paiement", "payment.retry_scheduled",
     [{"field": "notify_debtor", "op": "=", "value": True}], "payment-retry", "customer", None),
    ("Comptabilité : échéance impayée", "installment.uncollectable",
     [{"field": "alert_team", "op": "=", "value": True}], "instalment-uncollectable", "staff_group", "finance"),
]


def seed(creditor: Creditor) -> dict[str, int]:
    created = {"retry_policies": 0, "card_plans": 0, "rules": 0}
    CollectionSettings.objects.get_or_create(creditor=creditor)
    for method in (PaymentMethod.SEPA_DD, PaymentMethod.CARD):
        _, was_created = RetryPolicy.objects.get_or_create(
            creditor=creditor, method=method, defaults={"retry_codes": list(DEFAULT_RETRY_CODES[method])})
        created["retry_policies"] += was_created
    customer = Customer.objects.filter(creditor=creditor, external_ref="C-1006").first()
    if customer is not None and not InstallmentPlan.objects.filter(customer=customer, method="card").exists():
        today = timezone.localdate()
        token = tokenize(number="4242424242424242", exp_month=today.month, exp_year=today.year + 1, cvc="123")
        card = services.saved_card_create(customer=customer, gateway="sandbox", gateway_token=token, brand="visa",
                                          last4="4242", exp_month=today.month, exp_year=today.year + 1)
        request = customer.payment_requests.filter(status="open").first()
        if request is not None:
            schedule = services.instalment_schedule_build(total=request.amount_due, count=3,
                                                          first_due_date=today + dt.timedelta(days=3))
            services.installment_plan_create(customer=customer, method=PaymentMethod.CARD, schedule=schedule,
                                             payment_request=request, saved_card=card)
            created["card_plans"] += 1
    templates = {}
    for key, locale, subject, text in TEMPLATES:
        template, _ = NotificationTemplate.objects.get_or_create(
            key=key, channel="email", locale=locale, defaults={"subject": subject, "body_text": text})
        templates.setdefault(key, template)
    for name, event_type, conditions, key, recipient, group in RULES:
        if NotificationRule.objects.filter(name=name).exists():
            continue
        NotificationRule.objects.create(
            name=name, event_type=event_type, conditions=conditions, template=templates[key], channel="email",
            recipient=recipient, staff_group=Group.objects.get_or_create(name=group)[0] if group else None)
        created["rules"] += 1
    return created
