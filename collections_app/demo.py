"""Demo data for the collections core. Idempotent: running it again changes nothing."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from collections_app import services
from collections_app.models import Creditor, Customer, Invoice, PaymentMethod, PaymentRequest

CUSTOMERS = [
    ("C-1001", "Marie Lefèvre", "marie.lefevre@example.fr", "+33612345678", "fr", []),
    ("C-1002", "Jean Martin", "jean.martin@example.fr", "+33698765432", "fr", ["b2c"]),
    ("C-1003", "Boulangerie Petit SARL", "compta@boulangerie-petit.example.fr", "+33140000000", "fr",
     ["key account"]),
    ("C-1004", "John Smith", "john.smith@example.com", "+447911123456", "en", []),
    ("C-1005", "Sophie Bernard", "sophie.bernard@example.fr", "+33611223344", "fr", ["b2c"]),
    ("C-1006", "Garage Moreau", "contact@garage-moreau.example.fr", "+33380000000", "fr", ["key account"]),
]


@transaction.atomic
def seed() -> dict[str, int]:
    creditor, _ = Creditor.objects.get_or_create(
        name="Atelier Dupont SAS",
        defaults=dict(
            legal_name="Atelier Dupont SAS", registration_number="552100554", vat_number="FR40552100554",
            sepa_creditor_identifier="FR72ZZZ123456", iban="FR7630006000011234567890189", bic="AGRIFRPP",
            email="compta@atelier-dupont.example.fr", phone="+33145000000", address_line1="12 rue des Artisans",
            postal_code="75011", city="Paris", country="FR", instalment_methods=["card", "sepa_dd"],
        ),
    )
    today = timezone.localdate()
    created = {"customers": 0, "invoices": 0, "payment_requests": 0}
    for index, (ref, name, email, phone, locale, tags) in enumerate(CUSTOMERS):
        customer = Customer.objects.filter(creditor=creditor, external_ref=ref).first()
        if customer is None:
            customer = services.customer_create(creditor=creditor, external_ref=ref, name=name, email=email,
                                                phone=phone, locale=locale, tags=tags,
                                                time_zone="Europe/London" if locale == "en" else "Europe/Paris")
            created["customers"] += 1
        for n in range(2):
            number = f"F2026-{1000 + index * 10 + n}"
            if Invoice.objects.filter(creditor=creditor, external_ref=number).exists():
                continue
            issue = today - dt.timedelta(days=75 - index * 9 - n * 20)
            invoice = services.invoice_create(
                creditor=creditor, customer=customer, external_ref=number,
                amount_total=Decimal("120.00") + Decimal(index * 85) + Decimal(n * 37) + Decimal("0.50"),
                issue_date=issue, due_date=issue + dt.timedelta(days=30), description="Prestations d'atelier")
            created["invoices"] += 1
            request = services.payment_request_create(creditor=creditor, customer=customer, invoices=[invoice])
            created["payment_requests"] += 1
            if index == 1 and n == 0:  # one paid by card
                payment = services.payment_create(customer=customer, method=PaymentMethod.CARD,
                                                  amount=request.amount, payment_request=request,
                                                  gateway="sandbox")
                services.payment_record_success(payment=payment, gateway_reference="demo-card-1")
            if index == 2 and n == 0:  # one partially paid by transfer
                payment = services.payment_create(customer=customer, method=PaymentMethod.TRANSFER,
                                                  amount=Decimal("100.00"), payment_request=request)
                services.payment_record_success(payment=payment)
            if index == 4 and n == 1:  # one on a 3-instalment plan by direct debit
                mandate = services.mandate_create(creditor=creditor, customer=customer,
                                                  holder_name=customer.name, iban="FR1420041010050500013M02606",
                                                  signature_ip="127.0.0.1", signature_user_agent="seed_demo")
                schedule = services.instalment_schedule_build(total=request.amount_due, count=3,
                                                              first_due_date=today + dt.timedelta(days=7))
                services.installment_plan_create(customer=customer, method=PaymentMethod.SEPA_DD,
                                                 schedule=schedule, payment_request=request, mandate=mandate)
    from collections_app.sepa.demo import seed as collections_seed  # issue 5

    created.update(collections_seed(creditor))
    created["creditor_id"] = creditor.pk
    created["open_requests"] = PaymentRequest.objects.filter(
        creditor=creditor, status__in=PaymentRequest.OPEN_STATUSES).count()
    return created
