"""Allocation and deactivation of virtual IBANs."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from collections_app import payloads
from collections_app.errors import InvalidTransition, ValidationFailed
from collections_app.models import Customer, PaymentMethod, PaymentRequest
from collections_app.virtual_ibans.models import VirtualIBAN, VirtualIBANRange
from notifications.services import event_emit, events_emit_bulk


def virtual_iban_build(*, range: VirtualIBANRange, number: int) -> str:  # noqa: A002 - the model's name
    """The IBAN for one number of the range: bank/branch codes from the range, the account
    number made of the prefix and the zero-padded number; schwifty adds the national and
    the IBAN check digits and validates the result."""
    digits = range.account_length - len(range.account_prefix)
    if number < 1 or len(str(number)) > digits:
        raise ValidationFailed(_("The virtual IBAN range is exhausted."), field="range", code="range_exhausted")
    account = f"{range.account_prefix}{number:0{digits}d}"
    try:
        iban = IBAN.generate(range.country, bank_code=range.bank_code, branch_code=range.branch_code,
                             account_code=account)
        iban.validate(validate_bban=True)
    except SchwiftyException as exc:
        raise ValidationFailed(_("The virtual IBAN range does not give valid IBANs: %(error)s") % {"error": exc},
                               field="range") from exc
    return iban.compact


def virtual_iban_range_check(*, range: VirtualIBANRange) -> str:  # noqa: A002
    """Raise if the range's settings cannot give a valid IBAN; returns a sample."""
    return virtual_iban_build(range=range, number=1)


def _payload(viban: VirtualIBAN, previous: str | None = None) -> dict[str, Any]:
    return {"virtual_iban_id": viban.pk, "iban": viban.iban, "status": viban.status, "previous_status": previous,
            "payment_request_id": viban.payment_request_id, **payloads.customer_fields(viban.customer)}


def active_allocation_mode(*, creditor_id: int) -> str | None:
    """The allocation mode of the creditor's active range; None without one."""
    return (VirtualIBANRange.objects.filter(creditor_id=creditor_id, is_active=True)
            .values_list("allocation_mode", flat=True).first())


@transaction.atomic
def virtual_iban_allocate(*, customer: Customer, payment_request: PaymentRequest | None = None) -> VirtualIBAN:
    """The customer's (or the request's, in per-debt mode) active virtual IBAN, allocated
    from the creditor's range the first time. Safe to call concurrently.

    The range's row lock serialises a creditor's allocations and is held to the end of the
    caller's transaction (an outbox dispatcher's batch, a bulk import): one already allocated
    is therefore looked up before taking it, so that a pay link for a customer who has one never
    waits behind the creditor's other allocations."""
    mode = active_allocation_mode(creditor_id=customer.creditor_id)
    if mode is not None:
        found = _allocated(customer=customer, payment_request=payment_request,
                           per_debt=mode == VirtualIBANRange.AllocationMode.PER_DEBT).first()
        if found is not None:
            return found
    range_ = (VirtualIBANRange.objects.select_for_update()
              .filter(creditor_id=customer.creditor_id, is_active=True).first())
    if range_ is None:
        raise InvalidTransition(_("The creditor has no active virtual IBAN range."), code="no_virtual_iban_range")
    per_debt = range_.allocation_mode == VirtualIBANRange.AllocationMode.PER_DEBT
    if per_debt:
        if payment_request is None:
            raise ValidationFailed(_("Virtual IBANs are allocated per debt: give the payment request."),
                                   field="payment_request")
        if payment_request.customer_id != customer.pk:
            raise ValidationFailed(_("The payment request belongs to another customer."), field="payment_request")
    else:
        payment_request = None
    # Again under the range lock, which serialises allocations of one creditor: this read cannot race.
    found = _allocated(customer=customer, payment_request=payment_request, per_debt=per_debt).first()
    if found is not None:
        return found
    number = range_.next_number
    iban = virtual_iban_build(range=range_, number=number)
    range_.next_number = number + 1
    range_.save(update_fields=["next_number", "updated_at"])
    viban = VirtualIBAN.objects.create(range=range_, creditor_id=customer.creditor_id, customer=customer,
                                       payment_request=payment_request, number=number, iban=iban)
    event_emit(type="virtual_iban.allocated", creditor_id=customer.creditor_id, payload=_payload(viban),
               subjects={"virtual_iban": viban.pk, "customer": customer.pk,
                         "payment_request": viban.payment_request_id})
    return viban


def _allocated(*, customer: Customer, payment_request: PaymentRequest | None, per_debt: bool):
    if per_debt:
        if payment_request is None or payment_request.customer_id != customer.pk:
            return VirtualIBAN.objects.none()  # refused under the lock, with the reason
        return VirtualIBAN.objects.filter(payment_request=payment_request, status=VirtualIBAN.Status.ACTIVE)
    return VirtualIBAN.objects.filter(customer=customer, payment_request__isnull=True, status=VirtualIBAN.Status.ACTIVE)


def virtual_iban_ensure(*, payment_request: PaymentRequest) -> VirtualIBAN | None:
    """Allocate now what the outbox consumer would allocate a moment later, for callers that
    answer with the transfer details at once (the API, an import's return file). None when the
    creditor has no active range or the request does not take transfers."""
    mode = active_allocation_mode(creditor_id=payment_request.creditor_id)
    if mode is None or PaymentMethod.TRANSFER not in (payment_request.allowed_methods or []):
        return None
    per_debt = mode == VirtualIBANRange.AllocationMode.PER_DEBT
    return virtual_iban_allocate(customer=payment_request.customer, payment_request=payment_request if per_debt else None)


@transaction.atomic
def virtual_ibans_ensure_bulk(*, creditor_id: int, payment_requests: Sequence[PaymentRequest]) -> int:
    """virtual_iban_ensure for many requests of one creditor (an import's return file): one range
    lock, the numbers drawn in sequence, the rows and their events written in bulk. Returns how
    many were allocated."""
    wanted = {r.pk: r for r in payment_requests if PaymentMethod.TRANSFER in (r.allowed_methods or [])}

    def missing(mode: str) -> list[tuple[int, int | None]]:
        if mode == VirtualIBANRange.AllocationMode.PER_DEBT:
            have = set(VirtualIBAN.objects.filter(payment_request_id__in=list(wanted),
                                                  status=VirtualIBAN.Status.ACTIVE)
                       .values_list("payment_request_id", flat=True))
            return [(wanted[pk].customer_id, pk) for pk in sorted(wanted) if pk not in have]
        customer_ids = {r.customer_id for r in wanted.values()}
        have = set(VirtualIBAN.objects.filter(customer_id__in=customer_ids, payment_request__isnull=True,
                                              status=VirtualIBAN.Status.ACTIVE).values_list("customer_id", flat=True))
        return [(customer_id, None) for customer_id in sorted(customer_ids - have)]

    # Nothing to allocate (customers who have theirs): the range lock, held to the end of the
    # caller's transaction, is not taken at all (see virtual_iban_allocate).
    mode = active_allocation_mode(creditor_id=creditor_id)
    if mode is None or not wanted or not missing(mode):
        return 0
    range_ = VirtualIBANRange.objects.select_for_update().filter(creditor_id=creditor_id, is_active=True).first()
    if range_ is None:
        return 0
    targets = missing(range_.allocation_mode)
    if not targets:
        return 0
    first = range_.next_number
    created = VirtualIBAN.objects.bulk_create([
        VirtualIBAN(range=range_, creditor_id=creditor_id, customer_id=customer_id, payment_request_id=request_id,
                    number=first + offset, iban=virtual_iban_build(range=range_, number=first + offset))
        for offset, (customer_id, request_id) in enumerate(targets)], batch_size=5000)
    range_.next_number = first + len(targets)
    range_.save(update_fields=["next_number", "updated_at"])
    customers = Customer.objects.in_bulk({customer_id for customer_id, _r in targets})
    for viban in created:
        viban.customer = customers[viban.customer_id]
    events_emit_bulk([("virtual_iban.allocated", creditor_id, _payload(viban),
                       {"virtual_iban": viban.pk, "customer": viban.customer_id,
                        "payment_request": viban.payment_request_id}) for viban in created])
    return len(created)


@transaction.atomic
def virtual_iban_deactivate(*, virtual_iban: VirtualIBAN) -> VirtualIBAN:
    viban = VirtualIBAN.objects.select_for_update().get(pk=virtual_iban.pk)
    if viban.status != VirtualIBAN.Status.ACTIVE:
        raise InvalidTransition(_("This virtual IBAN is already deactivated."))
    previous = viban.status
    viban.status = VirtualIBAN.Status.DEACTIVATED
    viban.deactivated_at = timezone.now()
    viban.save(update_fields=["status", "deactivated_at", "updated_at"])
    event_emit(type="virtual_iban.deactivated", creditor_id=viban.creditor_id, payload=_payload(viban, previous),
               subjects={"virtual_iban": viban.pk, "customer": viban.customer_id,
                         "payment_request": viban.payment_request_id})
    return viban
