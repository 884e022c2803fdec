from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F, Sum

from collections_app.models import Customer, Invoice, PaymentRequest
from collections_app.virtual_ibans.selectors import virtual_ibans_for_requests


def customer_open_balance(*, customer: Customer) -> Decimal:
    """What the customer still owes across open invoices (in the customer's currency)."""
    total = (Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES)
             .aggregate(due=Sum(F("amount_total") - F("amount_paid") - F("amount_written_off")))["due"])
    return total or Decimal("0.00")


@dataclass(frozen=True)
class TransferBeneficiary:
    """What a debtor needs to pay a payment request by bank transfer."""

    name: str
    iban: str
    bic: str
    reference: str
    virtual: bool


def transfer_beneficiary(*, payment_request: PaymentRequest) -> TransferBeneficiary:
    """The one place that says where a transfer for this request goes: pay pages, QR codes,
    exports and return files all ask here. The request's (or its customer's) virtual IBAN when
    one is allocated, otherwise the creditor's own account, with the short reference to quote."""
    return transfer_beneficiaries(payment_requests=[payment_request])[payment_request.pk]


def transfer_beneficiaries(*, payment_requests: Sequence[PaymentRequest]) -> dict[int, TransferBeneficiary]:
    """transfer_beneficiary for many requests (with their creditor loaded), set-based."""
    virtual = virtual_ibans_for_requests(payment_requests=payment_requests)
    result = {}
    for request in payment_requests:
        creditor, own = request.creditor, virtual.get(request.pk)
        result[request.pk] = TransferBeneficiary(
            name=creditor.legal_name or creditor.name, iban=own.iban if own else creditor.iban, bic=creditor.bic,
            reference=request.short_reference, virtual=own is not None)
    return result
