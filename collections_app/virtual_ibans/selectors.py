from __future__ import annotations

from collections_app.models import PaymentRequest
from collections_app.virtual_ibans.models import VirtualIBAN, VirtualIBANRange


def virtual_iban_for_request(*, payment_request: PaymentRequest) -> VirtualIBAN | None:
    """The active virtual IBAN a transfer for this request should go to, if one is allocated:
    the request's own in per-debt mode, the customer's in per-customer mode."""
    mode = (VirtualIBANRange.objects.filter(creditor_id=payment_request.creditor_id, is_active=True)
            .values_list("allocation_mode", flat=True).first())
    if mode is None:
        return None
    qs = VirtualIBAN.objects.filter(status=VirtualIBAN.Status.ACTIVE)
    if mode == VirtualIBANRange.AllocationMode.PER_DEBT:
        return qs.filter(payment_request_id=payment_request.pk).first()
    return qs.filter(customer_id=payment_request.customer_id, payment_request__isnull=True).first()


def virtual_iban_for_customer(*, customer_id: int) -> VirtualIBAN | None:
    return (VirtualIBAN.objects.filter(customer_id=customer_id, payment_request__isnull=True,
                                       status=VirtualIBAN.Status.ACTIVE).first())
