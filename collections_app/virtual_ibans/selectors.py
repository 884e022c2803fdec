from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from django.db.models import OuterRef, QuerySet, Subquery

from collections_app.models import Customer, PaymentRequest
from collections_app.virtual_ibans.models import VirtualIBAN, VirtualIBANRange


def virtual_ibans_for_requests(*, payment_requests: Sequence[PaymentRequest]) -> dict[int, VirtualIBAN]:
    """Request id → the active virtual IBAN a transfer for it should go to, where one is allocated:
    the request's own in per-debt mode, the customer's in per-customer mode. A few queries
    whatever the number of requests (return files, exports)."""
    found: dict[int, VirtualIBAN] = {}
    by_creditor: dict[int, list[PaymentRequest]] = defaultdict(list)
    for request in payment_requests:
        by_creditor[request.creditor_id].append(request)
    modes = dict(VirtualIBANRange.objects.filter(creditor_id__in=list(by_creditor), is_active=True)
                 .values_list("creditor_id", "allocation_mode"))
    active = VirtualIBAN.objects.filter(status=VirtualIBAN.Status.ACTIVE)
    for creditor_id, requests in by_creditor.items():
        mode = modes.get(creditor_id)
        if mode is None:
            continue
        if mode == VirtualIBANRange.AllocationMode.PER_DEBT:
            ibans = {v.payment_request_id: v for v in active.filter(payment_request_id__in=[r.pk for r in requests])}
            found.update({r.pk: ibans[r.pk] for r in requests if r.pk in ibans})
        else:
            ibans = {v.customer_id: v for v in active.filter(customer_id__in={r.customer_id for r in requests},
                                                             payment_request__isnull=True)}
            found.update({r.pk: ibans[r.customer_id] for r in requests if r.customer_id in ibans})
    return found


def _customers_own() -> QuerySet[VirtualIBAN]:
    """Active virtual IBANs of customers (per-customer mode), not of one debt."""
    return VirtualIBAN.objects.filter(payment_request__isnull=True, status=VirtualIBAN.Status.ACTIVE)


def virtual_iban_for_customer(*, customer_id: int) -> VirtualIBAN | None:
    return _customers_own().filter(customer_id=customer_id).first()


def customers_with_virtual_iban(queryset: QuerySet[Customer]) -> QuerySet[Customer]:
    """Customers annotated with their active virtual IBAN (`active_virtual_iban`), in one
    subquery for a whole export rather than one query a customer."""
    return queryset.annotate(active_virtual_iban=Subquery(
        _customers_own().filter(customer=OuterRef("pk")).values("iban")[:1]))
