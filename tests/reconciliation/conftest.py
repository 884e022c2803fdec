"""A creditor with its bank account, a virtual IBAN range and the customers, invoices and
direct debits that the sample statements in samples/ talk about."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.utils import timezone

from collections_app import services
from collections_app.models import PaymentMethod
from collections_app.virtual_ibans.models import VirtualIBANRange
from collections_app.virtual_ibans.services import virtual_iban_allocate
from reconciliation.models import BankAccount
from tests.factories import CreditorFactory, CustomerFactory

SAMPLES = Path(__file__).parent / "samples"
ACME_IBAN = "FR7630004008280001012345691"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def invoice(customer, ref: str, amount: str, *, due: dt.date | None = None):
    due = due or dt.date(2024, 3, 1)
    return services.invoice_create(creditor=customer.creditor, customer=customer, external_ref=ref,
                                   amount_total=Decimal(amount), issue_date=due - dt.timedelta(days=30), due_date=due)


def dd_payment(customer, e2e: str, amount: str, *, succeed: bool = True):
    inv = invoice(customer, f"DD-{e2e}", amount)
    request = services.payment_request_create(creditor=customer.creditor, customer=customer, invoices=[inv])
    mandate = services.mandate_create(creditor=customer.creditor, customer=customer, holder_name=customer.name,
                                      iban="FR7610107001011234567890129")
    payment = services.payment_create(customer=customer, method=PaymentMethod.SEPA_DD, amount=Decimal(amount),
                                      payment_request=request, mandate=mandate, end_to_end_id=e2e)
    payment = services.payment_mark_processing(payment=payment)
    if succeed:
        payment = services.payment_record_success(payment=payment)
    return payment


@pytest.fixture
def world(db):
    acme = CreditorFactory(name="Acme SAS", iban=ACME_IBAN)
    account = BankAccount.objects.create(creditor=acme, name="Acme BNP", iban=ACME_IBAN, account_id=ACME_IBAN,
                                         write_off_tolerance=Decimal("1.00"))
    VirtualIBANRange.objects.create(creditor=acme, country="FR", bank_code="30004", branch_code="00999",
                                    account_prefix="9", account_length=11)
    w = SimpleNamespace(acme=acme, account=account)
    w.dupont = CustomerFactory(creditor=acme, name="Jean Dupont")
    w.dupont_viban = virtual_iban_allocate(customer=w.dupont)
    w.dupont_old = invoice(w.dupont, "INV-2024-0010", "300.00", due=dt.date(2024, 1, 31))
    w.dupont_new = invoice(w.dupont, "INV-2024-0011", "250.00", due=dt.date(2024, 2, 29))
    w.curie = CustomerFactory(creditor=acme, name="Marie Curie", company_name="Marie Curie SARL")
    w.curie_1 = invoice(w.curie, "INV-2024-0001", "120.00")
    w.curie_2 = invoice(w.curie, "INV-2024-0002", "80.00")
    w.martin = CustomerFactory(creditor=acme, name="Paul Martin")
    w.martin_inv = invoice(w.martin, "INV-2024-0003", "250.00")
    w.bernard = CustomerFactory(creditor=acme, name="Sophie Bernard")
    w.bernard_dd = dd_payment(w.bernard, "E2E-DD-0001", "45.00")
    w.bernard_open = invoice(w.bernard, "INV-2024-0021", "150.00", due=dt.date(2024, 3, 1))
    w.moreau = CustomerFactory(creditor=acme, name="Lucie Moreau")
    w.moreau_invs = [invoice(w.moreau, "INV-2024-0070", "100.00"), invoice(w.moreau, "INV-2024-0071", "200.00")]
    w.moreau_request = services.payment_request_create(creditor=acme, customer=w.moreau, invoices=w.moreau_invs,
                                                       reference="PR-ACME-77",
                                                       expires_at=timezone.now() + dt.timedelta(days=30))
    w.roux = CustomerFactory(creditor=acme, name="Alain Roux")
    w.roux_dd = dd_payment(w.roux, "E2E-DD-0002", "60.00", succeed=False)
    w.roux_inv = invoice(w.roux, "INV-2024-0030", "75.00")
    return w
