"""factory_boy factories for the domain core. Objects with a status go through the services,
so that events and balances are exactly what production would write."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from collections_app import services
from collections_app.models import Creditor, Customer, Invoice, PaymentRequest


class CreditorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Creditor

    name = factory.Sequence(lambda n: f"Créancier {n} SAS")
    legal_name = factory.LazyAttribute(lambda o: o.name)
    sepa_creditor_identifier = "FR72ZZZ123456"
    iban = "FR7630006000011234567890189"
    bic = "AGRIFRPP"
    email = factory.Sequence(lambda n: f"compta{n}@creditor.example")
    instalment_methods = factory.LazyFunction(lambda: ["card", "sepa_dd"])


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    creditor = factory.SubFactory(CreditorFactory)
    external_ref = factory.Sequence(lambda n: f"C{n:05d}")
    name = factory.Sequence(lambda n: f"Client {n}")
    email = factory.Sequence(lambda n: f"client{n}@example.fr")
    phone = "+33612345678"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        creditor = kwargs.pop("creditor")
        return services.customer_create(creditor=creditor, **kwargs)


def make_invoice(customer: Customer, *, amount: str | Decimal = "100.00", ref: str | None = None,
                 due_in_days: int = 30, currency: str = "EUR") -> Invoice:
    make_invoice.counter += 1
    today = timezone.localdate()
    return services.invoice_create(
        creditor=customer.creditor, customer=customer, external_ref=ref or f"INV-{make_invoice.counter:06d}",
        amount_total=Decimal(str(amount)), currency=currency, issue_date=today - dt.timedelta(days=1),
        due_date=today + dt.timedelta(days=due_in_days))


make_invoice.counter = 0


def make_request(customer: Customer, *, amount: str | Decimal = "100.00", invoices: int = 1,
                 **kwargs) -> PaymentRequest:
    invs = [make_invoice(customer, amount=amount) for _ in range(invoices)]
    return services.payment_request_create(creditor=customer.creditor, customer=customer, invoices=invs, **kwargs)
