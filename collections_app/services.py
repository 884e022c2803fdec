"""Business operations of the collections core.

One operation, one function: keyword-only, typed, atomic; each one locks what it changes,
checks the current state, raises a clear DomainError when the operation is not allowed,
and writes its event(s) into the outbox in the same transaction.
"""
from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from collections_app import payloads
from collections_app.errors import AmountExceedsBalance, Conflict, InvalidTransition, ValidationFailed
from collections_app.models import (
    ALL_PAY_METHODS,
    Creditor,
    Customer,
    Installment,
    InstallmentPlan,
    Invoice,
    Mandate,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentRequest,
    Refund,
    SavedCard,
    new_short_reference,
)
from collections_app.money import is_known_currency, round_money, split_evenly
from notifications.services import event_emit

if TYPE_CHECKING:
    from collections_app.retries.services import RetryDecision

ZERO = Decimal("0.00")


def _check_transition(obj: Any, *, to: str, allowed_from: Iterable[str]) -> str:
    allowed = {str(s) for s in allowed_from}
    if obj.status not in allowed:
        raise InvalidTransition(
            _("%(model)s #%(pk)s is %(status)s and cannot become %(to)s")
            % {"model": obj._meta.verbose_name, "pk": obj.pk, "status": obj.status, "to": to}
        )
    return obj.status


def _lock(model: type, pk: int):
    return model.objects.select_for_update().get(pk=pk)


def _positive_amount(value: Any, currency: str, *, field: str = "amount") -> Decimal:
    try:
        amount = round_money(value, currency)
    except ValueError as exc:
        raise ValidationFailed(_("Enter a valid amount."), field=field) from exc
    if amount <= 0:
        raise ValidationFailed(_("The amount must be greater than zero."), field=field)
    return amount


def _currency(code: str | None, default: str, *, field: str = "currency") -> str:
    code = (code or default or "").upper()
    if not is_known_currency(code):
        raise ValidationFailed(_("Unknown currency %(code)s.") % {"code": code}, field=field)
    return code


# --------------------------------------------------------------------------- customers

CUSTOMER_FIELDS = ("name", "company_name", "is_business", "email", "phone", "locale", "time_zone",
                   "address_line1", "postal_code", "city", "country", "tags", "currency", "notes")


@transaction.atomic
def customer_create(*, creditor: Creditor, external_ref: str, name: str, **fields: Any) -> Customer:
    unknown = set(fields) - set(CUSTOMER_FIELDS)
    if unknown:
        raise ValidationFailed(_("Unknown field(s): %s") % ", ".join(sorted(unknown)))
    if not external_ref.strip():
        raise ValidationFailed(_("This field is required."), field="external_ref")
    fields.setdefault("locale", creditor.default_locale)
    fields.setdefault("time_zone", creditor.time_zone)
    fields["currency"] = _currency(fields.get("currency"), creditor.default_currency)
    if Customer.objects.filter(creditor=creditor, external_ref=external_ref).exists():
        raise Conflict(_("A customer with this reference already exists."), field="external_ref",
                       code="duplicate_reference")
    customer = Customer.objects.create(creditor=creditor, external_ref=external_ref.strip(), name=name, **fields)
    event_emit(type="customer.created", creditor_id=creditor.pk, payload=payloads.customer_fields(customer),
               subjects={"customer": customer.pk})
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, **fields: Any) -> Customer:
    unknown = set(fields) - set(CUSTOMER_FIELDS)
    if unknown:
        raise ValidationFailed(_("Unknown field(s): %s") % ", ".join(sorted(unknown)))
    customer = _lock(Customer, customer.pk)
    changed = [name for name, value in fields.items() if getattr(customer, name) != value]
    if not changed:
        return customer
    for name in changed:
        setattr(customer, name, fields[name])
    customer.save()
    event_emit(type="customer.updated", creditor_id=customer.creditor_id,
               payload={**payloads.customer_fields(customer), "changed_fields": changed},
               subjects={"customer": customer.pk})
    return customer


@transaction.atomic
def customer_credit_adjust(*, customer: Customer, delta: Decimal, reason: str) -> Customer:
    """Add (positive delta) or use (negative delta) the customer's credit balance."""
    customer = _lock(Customer, customer.pk)
    delta = round_money(delta, customer.currency)
    if delta == 0:
        return customer
    if customer.credit_balance + delta < 0:
        raise AmountExceedsBalance(_("The credit balance is not sufficient."), field="amount")
    customer.credit_balance += delta
    customer.save(update_fields=["credit_balance", "updated_at"])
    event_emit(type="customer.credit_balance_changed", creditor_id=customer.creditor_id,
               payload={**payloads.customer_fields(customer), "credit_balance": customer.credit_balance,
                        "currency": customer.currency, "delta": delta, "reason": reason},
               subjects={"customer": customer.pk})
    return customer


# --------------------------------------------------------------------------- invoices


@transaction.atomic
def invoice_create(*, creditor: Creditor, customer: Customer, external_ref: str, amount_total: Any,
                   issue_date: dt.date, due_date: dt.date, currency: str | None = None,
                   description: str = "") -> Invoice:
    if customer.creditor_id != creditor.pk:
        raise ValidationFailed(_("The customer belongs to another creditor."), field="customer")
    currency = _currency(currency, customer.currency or creditor.default_currency)
    amount = _positive_amount(amount_total, currency, field="amount_total")
    if due_date < issue_date:
        raise ValidationFailed(_("The due date cannot be before the issue date."), field="due_date")
    if Invoice.objects.filter(creditor=creditor, external_ref=external_ref).exists():
        raise Conflict(_("An invoice with this number already exists."), field="external_ref",
                       code="duplicate_reference")
    invoice = Invoice.objects.create(creditor=creditor, customer=customer, external_ref=external_ref,
                                     amount_total=amount, currency=currency, issue_date=issue_date,
                                     due_date=due_date, description=description)
    event_emit(type="invoice.created", creditor_id=creditor.pk, payload=payloads.invoice_payload(invoice),
               subjects={"invoice": invoice.pk, "customer": customer.pk})
    return invoice


@transaction.atomic
def invoice_update(*, invoice: Invoice, amount_total: Any = None, due_date: dt.date | None = None,
                   description: str | None = None) -> Invoice:
    invoice = _lock(Invoice, invoice.pk)
    _check_transition(invoice, to="updated", allowed_from=Invoice.OPEN_STATUSES)
    changed: list[str] = []
    if amount_total is not None:
        amount = _positive_amount(amount_total, invoice.currency, field="amount_total")
        if amount < invoice.amount_paid + invoice.amount_written_off:
            raise ValidationFailed(_("The amount cannot be below what is already paid."), field="amount_total")
        if amount != invoice.amount_total:
            invoice.amount_total = amount
            changed.append("amount_total")
    if due_date is not None and due_date != invoice.due_date:
        if due_date < invoice.issue_date:
            raise ValidationFailed(_("The due date cannot be before the issue date."), field="due_date")
        invoice.due_date = due_date
        changed.append("due_date")
    if description is not None and description != invoice.description:
        invoice.description = description
        changed.append("description")
    if not changed:
        return invoice
    previous = invoice.status
    _invoice_refresh_status(invoice)
    invoice.save()
    event_emit(type="invoice.updated", creditor_id=invoice.creditor_id,
               payload={**payloads.invoice_payload(invoice, previous), "changed_fields": changed},
               subjects={"invoice": invoice.pk, "customer": invoice.customer_id})
    _invoice_emit_status_change(invoice, previous)
    return invoice


@transaction.atomic
def invoice_cancel(*, invoice: Invoice) -> Invoice:
    invoice = _lock(Invoice, invoice.pk)
    previous = _check_transition(invoice, to="cancelled", allowed_from=[Invoice.Status.OPEN])
    if invoice.amount_paid > 0:
        raise InvalidTransition(_("An invoice with payments cannot be cancelled; write it off instead."))
    invoice.status = Invoice.Status.CANCELLED
    invoice.save(update_fields=["status", "updated_at"])
    event_emit(type="invoice.cancelled", creditor_id=invoice.creditor_id,
               payload=payloads.invoice_payload(invoice, previous),
               subjects={"invoice": invoice.pk, "customer": invoice.customer_id})
    return invoice


@transaction.atomic
def invoice_write_off(*, invoice: Invoice, max_amount: Decimal | None = None) -> Invoice:
    """Write off what remains due (or fail if it is more than max_amount, the tolerance)."""
    invoice = _lock(Invoice, invoice.pk)
    previous = _check_transition(invoice, to="written_off", allowed_from=Invoice.OPEN_STATUSES)
    remaining = invoice.amount_due
    if max_amount is not None and remaining > max_amount:
        raise ValidationFailed(_("The remaining %(amount)s is above the write-off tolerance.")
                               % {"amount": remaining}, field="amount")
    invoice.amount_written_off += remaining
    invoice.status = Invoice.Status.WRITTEN_OFF
    invoice.save(update_fields=["amount_written_off", "status", "updated_at"])
    event_emit(type="invoice.written_off", creditor_id=invoice.creditor_id,
               payload={**payloads.invoice_payload(invoice, previous), "written_off_amount": remaining},
               subjects={"invoice": invoice.pk, "customer": invoice.customer_id})
    return invoice


@transaction.atomic
def invoice_record_paid_outside(*, invoice: Invoice, balance: Decimal, gateway: str = "erp") -> Payment | None:
    """Another system (an ERP) says only `balance` remains due: what it received outside the
    platform (cheque, cash, offset) is recorded as a payment allocated to the invoice, so that
    reminders stop and pay links follow. None when it says nothing new: the invoice is locked
    first, so the same news told twice is recorded once."""
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    due = invoice.amount_due
    if invoice.status not in Invoice.OPEN_STATUSES or balance >= due:
        return None
    received = due - balance
    payment = payment_create(customer=invoice.customer, method=PaymentMethod.OTHER, amount=received,
                             currency=invoice.currency, gateway=gateway,
                             gateway_reference=f"balance:{invoice.external_ref}:{balance}"[:128])
    return payment_record_success(payment=payment, allocations=[AllocationLine(invoice=invoice, amount=received)])


@transaction.atomic
def invoice_write_off_reverse(*, invoice: Invoice) -> Invoice:
    """Take a write-off back (e.g. the payment it completed was unmatched): the written-off
    balance is due again and the invoice reopens."""
    invoice = _lock(Invoice, invoice.pk)
    previous = _check_transition(invoice, to="open", allowed_from=[Invoice.Status.WRITTEN_OFF])
    amount = invoice.amount_written_off
    invoice.amount_written_off = ZERO
    invoice.status = Invoice.Status.OPEN
    _invoice_refresh_status(invoice)
    invoice.save(update_fields=["amount_written_off", "status", "paid_at", "updated_at"])
    event_emit(type="invoice.write_off_reversed", creditor_id=invoice.creditor_id,
               payload={**payloads.invoice_payload(invoice, previous), "written_off_amount": amount},
               subjects={"invoice": invoice.pk, "customer": invoice.customer_id})
    return invoice


def _invoice_refresh_status(invoice: Invoice) -> None:
    if invoice.status in (Invoice.Status.CANCELLED, Invoice.Status.WRITTEN_OFF):
        return
    if invoice.amount_due <= 0:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = invoice.paid_at or timezone.now()
    elif invoice.amount_paid > 0:
        invoice.status = Invoice.Status.PARTIALLY_PAID
        invoice.paid_at = None
    else:
        invoice.status = Invoice.Status.OPEN
        invoice.paid_at = None


_INVOICE_STATUS_EVENTS = {
    Invoice.Status.PAID: "invoice.paid",
    Invoice.Status.PARTIALLY_PAID: "invoice.partially_paid",
}


def invoice_status_event_type(invoice: Invoice, previous: str) -> str | None:
    """The event an invoice's status change writes (None: no change). Shared with collections_app.bulk."""
    if invoice.status == previous:
        return None
    if invoice.status in _INVOICE_STATUS_EVENTS and not (
        previous == Invoice.Status.PAID and invoice.status == Invoice.Status.PARTIALLY_PAID
    ):
        return _INVOICE_STATUS_EVENTS[invoice.status]
    return "invoice.reopened"


def _invoice_emit_status_change(invoice: Invoice, previous: str) -> None:
    event_type = invoice_status_event_type(invoice, previous)
    if event_type is None:
        return
    event_emit(type=event_type, creditor_id=invoice.creditor_id,
               payload=payloads.invoice_payload(invoice, previous),
               subjects={"invoice": invoice.pk, "customer": invoice.customer_id})


# --------------------------------------------------------------------------- payment requests


def _unique_short_reference() -> str:
    for _attempt in range(20):
        candidate = new_short_reference()
        if not PaymentRequest.objects.filter(short_reference=candidate).exists():
            return candidate
    raise RuntimeError("could not draw a free short reference")  # 30^8 space: never in practice


@transaction.atomic
def payment_request_create(*, creditor: Creditor, customer: Customer, invoices: Sequence[Invoice] = (),
                           amount: Any = None, currency: str | None = None, reference: str | None = None,
                           allowed_methods: Sequence[str] | None = None, expires_at: dt.datetime | None = None,
                           description: str = "", allow_partial: bool | None = None,
                           min_partial_amount: Any = None, allow_instalments: bool | None = None,
                           max_instalments: int | None = None) -> PaymentRequest:
    if customer.creditor_id != creditor.pk:
        raise ValidationFailed(_("The customer belongs to another creditor."), field="customer")
    invoices = list(Invoice.objects.select_for_update().filter(pk__in=[i.pk for i in invoices]).order_by("pk"))
    for invoice in invoices:
        if invoice.customer_id != customer.pk:
            raise ValidationFailed(_("Invoice %(ref)s belongs to another customer.") % {"ref": invoice.external_ref},
                                   field="invoices")
        if invoice.status not in Invoice.OPEN_STATUSES:
            raise ValidationFailed(_("Invoice %(ref)s is not open.") % {"ref": invoice.external_ref},
                                   field="invoices")
    invoice_currencies = {i.currency for i in invoices}
    if len(invoice_currencies) > 1:
        raise ValidationFailed(_("All invoices must be in the same currency."), field="invoices")
    currency = _currency(currency, next(iter(invoice_currencies), customer.currency or creditor.default_currency))
    if invoice_currencies and currency not in invoice_currencies:
        raise ValidationFailed(_("The currency must be the invoices' currency."), field="currency")
    if amount is None:
        if not invoices:
            raise ValidationFailed(_("Give an amount or at least one invoice."), field="amount")
        amount = sum((i.amount_due for i in invoices), ZERO)
    amount = _positive_amount(amount, currency)
    methods = list(dict.fromkeys(allowed_methods or [m.value for m in ALL_PAY_METHODS]))
    bad = [m for m in methods if m not in {pm.value for pm in ALL_PAY_METHODS}]
    if bad or not methods:
        raise ValidationFailed(_("Unknown payment method(s): %s") % ", ".join(bad), field="allowed_methods")
    now = timezone.now()
    if expires_at is None:
        expires_at = now + dt.timedelta(days=creditor.pay_link_validity_days)
    elif expires_at <= now:
        raise ValidationFailed(_("The expiry must be in the future."), field="expires_at")
    if not reference:
        reference = invoices[0].external_ref if len(invoices) == 1 else f"PR-{secrets.token_hex(5).upper()}"
    if min_partial_amount is not None:
        min_partial_amount = _positive_amount(min_partial_amount, currency, field="min_partial_amount")
    request = PaymentRequest(
        creditor=creditor, customer=customer, reference=reference, currency=currency, amount=amount,
        allowed_methods=methods, expires_at=expires_at, description=description, allow_partial=allow_partial,
        min_partial_amount=min_partial_amount, allow_instalments=allow_instalments,
        max_instalments=max_instalments,
    )
    # The unique constraints decide (reference per creditor, short reference): no look-before-you-leap
    # query, and no race between a check and the insert.
    for _attempt in range(5):
        try:
            with transaction.atomic():
                request.save()
            break
        except IntegrityError:
            if PaymentRequest.objects.filter(creditor=creditor, reference=reference).exists():
                raise Conflict(_("A payment request with this reference already exists."), field="reference",
                               code="duplicate_reference") from None
            request.pk = None
            request.short_reference = _unique_short_reference()
    else:
        raise RuntimeError("could not draw a free short reference")
    if invoices:
        request.invoices.set(invoices)
    event_emit(type="payment_request.created", creditor_id=creditor.pk,
               payload=payloads.payment_request_payload(request, invoices=invoices),
               subjects={"payment_request": request.pk, "customer": customer.pk,
                         "invoice": [i.pk for i in invoices]})
    return request


def _request_subjects(request: PaymentRequest) -> dict[str, Any]:
    return {"payment_request": request.pk, "customer": request.customer_id,
            "invoice": list(request.invoices.values_list("pk", flat=True))}


@transaction.atomic
def payment_request_cancel(*, payment_request: PaymentRequest) -> PaymentRequest:
    request = _lock(PaymentRequest, payment_request.pk)
    previous = _check_transition(request, to="cancelled", allowed_from=PaymentRequest.OPEN_STATUSES)
    if Payment.objects.filter(payment_request=request, status__in=[Payment.Status.PENDING,
                                                                   Payment.Status.PROCESSING]).exists():
        raise InvalidTransition(_("A payment is in progress on this request."))
    request.status = PaymentRequest.Status.CANCELLED
    request.save(update_fields=["status", "updated_at"])
    event_emit(type="payment_request.cancelled", creditor_id=request.creditor_id,
               payload=payloads.payment_request_payload(request, previous), subjects=_request_subjects(request))
    return request


@transaction.atomic
def payment_request_expire(*, payment_request: PaymentRequest, now: dt.datetime | None = None) -> PaymentRequest:
    request = _lock(PaymentRequest, payment_request.pk)
    previous = _check_transition(request, to="expired", allowed_from=PaymentRequest.OPEN_STATUSES)
    if request.expires_at is None or request.expires_at > (now or timezone.now()):
        raise InvalidTransition(_("This payment request has not reached its expiry."))
    request.status = PaymentRequest.Status.EXPIRED
    request.save(update_fields=["status", "updated_at"])
    event_emit(type="payment_request.expired", creditor_id=request.creditor_id,
               payload=payloads.payment_request_payload(request, previous), subjects=_request_subjects(request))
    return request


def payment_requests_expire_due(*, now: dt.datetime | None = None, batch_size: int = 500) -> int:
    """Expire every open request past its expiry; safe to run concurrently (SKIP LOCKED)."""
    now = now or timezone.now()
    count = 0
    while True:
        with transaction.atomic():
            ids = list(PaymentRequest.objects.select_for_update(skip_locked=True)
                       .filter(status__in=PaymentRequest.OPEN_STATUSES, expires_at__lte=now)
                       .values_list("pk", flat=True)[:batch_size])
            for pk in ids:
                payment_request_expire(payment_request=PaymentRequest(pk=pk), now=now)
        count += len(ids)
        if len(ids) < batch_size:
            return count


def payment_request_reserved_amount(request: PaymentRequest) -> Decimal:
    """What payments in flight on the request may still collect."""
    return (Payment.objects.filter(payment_request=request,
                                   status__in=[Payment.Status.PENDING, Payment.Status.PROCESSING])
            .aggregate(total=Sum("amount"))["total"] or ZERO)


# --------------------------------------------------------------------------- payments


@transaction.atomic
def payment_create(*, customer: Customer, method: str, amount: Any, currency: str | None = None,
                   payment_request: PaymentRequest | None = None, installment: Installment | None = None,
                   mandate: Mandate | None = None, saved_card: SavedCard | None = None, gateway: str = "",
                   gateway_reference: str = "", end_to_end_id: str = "", retry_of: Payment | None = None,
                   attempt: int = 1) -> Payment:
    """Start a payment. On a payment request, the amount is reserved against the balance
    under a row lock, so that concurrent payments can never collect more than is due."""
    if method not in PaymentMethod.values:
        raise ValidationFailed(_("Unknown payment method."), field="method")
    request = None
    if payment_request is not None:
        request = _lock(PaymentRequest, payment_request.pk)
        currency = payment_request_check_payable(request=request, customer=customer, currency=currency)
    currency = _currency(currency, customer.currency)
    amount = _positive_amount(amount, currency)
    if request is not None:
        available = request.amount_due - payment_request_reserved_amount(request)
        if amount > available:
            raise AmountExceedsBalance(
                _("The amount is above the remaining balance of %(balance)s %(currency)s.")
                % {"balance": max(available, ZERO), "currency": currency}, field="amount")
    payment = Payment.objects.create(
        creditor_id=customer.creditor_id, customer=customer, payment_request=request, installment=installment,
        mandate=mandate, saved_card=saved_card, method=method, currency=currency, amount=amount, gateway=gateway,
        gateway_reference=gateway_reference, end_to_end_id=end_to_end_id, retry_of=retry_of, attempt=attempt,
    )
    event_emit(type="payment.created", creditor_id=payment.creditor_id, payload=payloads.payment_payload(payment),
               subjects=_payment_subjects(payment))
    return payment


def payment_request_check_payable(*, request: PaymentRequest, customer: Customer, currency: str | None) -> str:
    """The checks of a payment on a request (its customer, open, not expired, its currency);
    returns the payment's currency. Shared with collections_app.bulk's ledger."""
    if request.customer_id != customer.pk:
        raise ValidationFailed(_("The payment request belongs to another customer."), field="payment_request")
    if request.status not in PaymentRequest.OPEN_STATUSES:
        raise InvalidTransition(_("This payment request is %(status)s.") % {"status": request.get_status_display()})
    if request.expires_at and request.expires_at <= timezone.now():
        raise InvalidTransition(_("This payment link has expired."))
    currency = _currency(currency, request.currency)
    if currency != request.currency:
        raise ValidationFailed(_("The currency must be the request's currency."), field="currency")
    return currency


def _payment_subjects(payment: Payment) -> dict[str, Any]:
    return {
        "payment": payment.pk,
        "customer": payment.customer_id,
        "payment_request": payment.payment_request_id,
        "installment": payment.installment_id,
        "instalment_plan": payment.installment.plan_id if payment.installment_id else None,
        "invoice": list(payment.allocations.values_list("invoice_id", flat=True)),
    }


@transaction.atomic
def payment_mark_processing(*, payment: Payment, gateway_reference: str = "", end_to_end_id: str = "") -> Payment:
    payment = _lock(Payment, payment.pk)
    previous = _check_transition(payment, to="processing", allowed_from=[Payment.Status.PENDING])
    payment.status = Payment.Status.PROCESSING
    payment.gateway_reference = gateway_reference or payment.gateway_reference
    payment.end_to_end_id = end_to_end_id or payment.end_to_end_id
    payment.save()
    event_emit(type="payment.processing", creditor_id=payment.creditor_id,
               payload=payloads.payment_payload(payment, previous), subjects=_payment_subjects(payment))
    return payment


@dataclass(frozen=True)
class AllocationLine:
    invoice: Invoice
    amount: Decimal


def _default_allocation_targets(payment: Payment) -> list[Invoice]:
    """Where a payment goes when nobody said: the request's invoices, else the customer's
    open invoices, oldest due first."""
    if payment.payment_request_id:
        qs = payment.payment_request.invoices.all()
    elif payment.installment_id and payment.installment.plan.payment_request_id:
        qs = payment.installment.plan.payment_request.invoices.all()
    else:
        qs = Invoice.objects.filter(customer_id=payment.customer_id, currency=payment.currency)
    return list(qs.filter(status__in=Invoice.OPEN_STATUSES).order_by("due_date", "pk"))


@transaction.atomic
def payment_record_success(*, payment: Payment, allocations: Sequence[AllocationLine] | None = None,
                           gateway_reference: str = "") -> Payment:
    """The money is in: allocate it to invoices, settle the request and the instalment,
    and put any over-payment on the customer's credit balance."""
    payment = _lock(Payment, payment.pk)
    previous = _check_transition(payment, to="succeeded",
                                 allowed_from=[Payment.Status.PENDING, Payment.Status.PROCESSING])
    request = _lock(PaymentRequest, payment.payment_request_id) if payment.payment_request_id else None
    payment.status = Payment.Status.SUCCEEDED
    payment.succeeded_at = timezone.now()
    if gateway_reference:
        payment.gateway_reference = gateway_reference
    payment.save()

    remaining = payment.amount
    lines: list[AllocationLine]
    if allocations is not None:
        lines = list(allocations)
        if sum((line.amount for line in lines), ZERO) > payment.amount:
            raise AmountExceedsBalance(_("Allocations exceed the payment amount."), field="allocations")
    else:
        lines = [AllocationLine(invoice=i, amount=i.amount_due) for i in _default_allocation_targets(payment)]
    allocated: list[dict[str, Any]] = []
    for line in sorted(lines, key=lambda ln: ln.invoice.pk):
        if remaining <= 0:
            break
        invoice = _lock(Invoice, line.invoice.pk)
        if invoice.status not in Invoice.OPEN_STATUSES or invoice.currency != payment.currency:
            if allocations is not None:
                raise ValidationFailed(_("Invoice %(ref)s cannot receive this payment.")
                                       % {"ref": invoice.external_ref}, field="allocations")
            continue
        amount = min(line.amount, invoice.amount_due, remaining)
        if amount <= 0:
            continue
        _invoice_allocate(invoice=invoice, payment=payment, amount=amount)
        remaining -= amount
        allocated.append({"invoice_id": invoice.pk, "invoice_external_ref": invoice.external_ref,
                          "amount": amount})

    if request is not None:
        previous_request = request.status
        request.amount_paid = min(request.amount, request.amount_paid + payment.amount)
        _request_refresh_status(request)
        request.save()
        _request_emit_status_change(request, previous_request)

    # Its own request included: paid by amount above, or here when its invoices were settled elsewhere.
    _requests_follow_invoices(invoice_ids=[a["invoice_id"] for a in allocated], exclude_request_id=None)

    if payment.installment_id:
        _installment_mark_paid(installment_id=payment.installment_id, payment=payment)

    event_emit(type="payment.succeeded", creditor_id=payment.creditor_id,
               payload=payloads.payment_payload(payment, previous, allocations=allocated),
               subjects=_payment_subjects(payment))
    if remaining > 0:
        customer_credit_adjust(customer=payment.customer, delta=remaining,
                               reason=f"over-payment of payment #{payment.pk}")
    return payment


def _invoice_allocate(*, invoice: Invoice, payment: Payment, amount: Decimal) -> None:
    allocation, created = PaymentAllocation.objects.get_or_create(
        payment=payment, invoice=invoice, defaults={"amount": amount})
    if not created:
        allocation.amount += amount
        allocation.save(update_fields=["amount"])
    previous = invoice.status
    invoice.amount_paid += amount
    _invoice_refresh_status(invoice)
    invoice.save(update_fields=["amount_paid", "status", "paid_at", "updated_at"])
    _invoice_emit_status_change(invoice, previous)


def _request_refresh_status(request: PaymentRequest) -> None:
    if request.status in (PaymentRequest.Status.CANCELLED,):
        return
    if request.amount_paid >= request.amount:
        request.status = PaymentRequest.Status.PAID
        request.paid_at = request.paid_at or timezone.now()
    elif request.amount_paid > 0:
        request.status = PaymentRequest.Status.PARTIALLY_PAID
        request.paid_at = None
    else:
        expired = request.expires_at is not None and request.expires_at <= timezone.now()
        request.status = PaymentRequest.Status.EXPIRED if expired else PaymentRequest.Status.OPEN
        request.paid_at = None


def _requests_follow_invoices(*, invoice_ids: Sequence[int], exclude_request_id: int | None) -> None:
    """Other pay links for the same invoices follow them: when a payment that is not theirs (a
    transfer matched to the invoice, another pay link) settles all their invoices, they are paid,
    so that nobody is asked, reminded or charged for it a second time; when that payment is
    reversed, they open again."""
    if not invoice_ids:
        return
    links = PaymentRequest.invoices.through.objects.filter(invoice_id__in=invoice_ids)
    if exclude_request_id:
        links = links.exclude(paymentrequest_id=exclude_request_id)
    request_ids = sorted(set(links.values_list("paymentrequest_id", flat=True)))
    for request in PaymentRequest.objects.select_for_update().filter(pk__in=request_ids).order_by("pk"):
        previous = request.status
        if request_follow_invoices(request, open_left=request.invoices.filter(
                status__in=Invoice.OPEN_STATUSES).exists()):
            request.save(update_fields=["status", "paid_at", "updated_at"])
            _request_emit_status_change(request, previous)


def request_follow_invoices(request: PaymentRequest, *, open_left: bool) -> bool:
    """In memory: a request whose invoices are all settled is paid; a paid one whose invoices
    reopen (and that its own payments do not cover) opens again. True when it changed."""
    if request.status in PaymentRequest.OPEN_STATUSES and not open_left:
        request.status = PaymentRequest.Status.PAID
        request.paid_at = timezone.now()
        return True
    if request.status == PaymentRequest.Status.PAID and open_left and request.amount_paid < request.amount:
        _request_refresh_status(request)
        return True
    return False


def request_status_event_type(request: PaymentRequest, previous: str) -> str | None:
    """The event a payment request's status change writes (None: no change). Shared with collections_app.bulk."""
    if request.status == previous:
        return None
    if request.status == PaymentRequest.Status.PAID:
        return "payment_request.paid"
    if request.status == PaymentRequest.Status.PARTIALLY_PAID and previous != PaymentRequest.Status.PAID:
        return "payment_request.partially_paid"
    if request.status == PaymentRequest.Status.EXPIRED:
        return "payment_request.expired"
    return "payment_request.reopened"


def _request_emit_status_change(request: PaymentRequest, previous: str) -> None:
    event_type = request_status_event_type(request, previous)
    if event_type is None:
        return
    event_emit(type=event_type, creditor_id=request.creditor_id,
               payload=payloads.payment_request_payload(request, previous), subjects=_request_subjects(request))


@transaction.atomic
def payment_record_failure(*, payment: Payment, reason_code: str, reason_message: str = "",
                           will_retry: bool = False) -> Payment:
    payment = _lock(Payment, payment.pk)
    previous = _check_transition(payment, to="failed",
                                 allowed_from=[Payment.Status.PENDING, Payment.Status.PROCESSING])
    payment.status = Payment.Status.FAILED
    payment.failed_at = timezone.now()
    payment.reason_code = reason_code[:32]
    payment.reason_message = reason_message[:255]
    payment.save()
    decision = None
    if payment.installment_id:
        decision = _installment_mark_failed(installment_id=payment.installment_id, payment=payment)
    event_emit(type="payment.failed", creditor_id=payment.creditor_id,
               payload=payloads.payment_payload(payment, previous,
                                                will_retry=will_retry or bool(decision and decision.will_retry)),
               subjects=_payment_subjects(payment))
    if decision is not None:
        decision.apply()
    return payment


@transaction.atomic
def payment_cancel(*, payment: Payment) -> Payment:
    payment = _lock(Payment, payment.pk)
    previous = _check_transition(payment, to="cancelled", allowed_from=[Payment.Status.PENDING])
    payment.status = Payment.Status.CANCELLED
    payment.save(update_fields=["status", "updated_at"])
    event_emit(type="payment.cancelled", creditor_id=payment.creditor_id,
               payload=payloads.payment_payload(payment, previous), subjects=_payment_subjects(payment))
    return payment


@transaction.atomic
def payment_reverse(*, payment: Payment, reason_code: str, reason_message: str = "") -> Payment:
    """A succeeded payment came back (direct-debit return, chargeback): undo its allocations."""
    payment = _lock(Payment, payment.pk)
    previous = _check_transition(payment, to="reversed", allowed_from=[Payment.Status.SUCCEEDED])
    subjects = _payment_subjects(payment)
    allocated_total = ZERO
    for allocation in payment.allocations.select_related(None).order_by("invoice_id"):
        invoice = _lock(Invoice, allocation.invoice_id)
        previous_invoice = invoice.status
        if invoice.status in (Invoice.Status.PAID, Invoice.Status.PARTIALLY_PAID, Invoice.Status.OPEN):
            invoice.amount_paid -= allocation.amount
            _invoice_refresh_status(invoice)
            invoice.save(update_fields=["amount_paid", "status", "paid_at", "updated_at"])
            _invoice_emit_status_change(invoice, previous_invoice)
        allocated_total += allocation.amount
    reopened_invoice_ids = list(payment.allocations.values_list("invoice_id", flat=True))
    payment.allocations.all().delete()
    _requests_follow_invoices(invoice_ids=reopened_invoice_ids, exclude_request_id=payment.payment_request_id)
    if payment.payment_request_id:
        request = _lock(PaymentRequest, payment.payment_request_id)
        previous_request = request.status
        request.amount_paid = max(ZERO, request.amount_paid - payment.amount)
        _request_refresh_status(request)
        request.save()
        _request_emit_status_change(request, previous_request)
    over = payment.amount - allocated_total
    if over > 0:
        customer = _lock(Customer, payment.customer_id)
        customer_credit_adjust(customer=customer, delta=-min(over, customer.credit_balance),
                               reason=f"reversal of payment #{payment.pk}")
    payment.status = Payment.Status.REVERSED
    payment.reason_code = reason_code[:32]
    payment.reason_message = reason_message[:255]
    payment.failed_at = timezone.now()
    payment.save()
    decision = None
    if payment.installment_id:
        decision = _installment_mark_failed(installment_id=payment.installment_id, payment=payment)
    event_emit(type="payment.reversed", creditor_id=payment.creditor_id,
               payload=payloads.payment_payload(payment, previous, will_retry=bool(decision and decision.will_retry)),
               subjects=subjects)
    if decision is not None:
        decision.apply()
    return payment


# --------------------------------------------------------------------------- refunds


def payment_refundable_amount(payment: Payment) -> Decimal:
    refunded = (payment.refunds.exclude(status=Refund.Status.FAILED).aggregate(total=Sum("amount"))["total"]
                or ZERO)
    return payment.amount - refunded


@transaction.atomic
def refund_create(*, payment: Payment, amount: Any = None, reason: str = "") -> Refund:
    payment = _lock(Payment, payment.pk)
    if payment.status != Payment.Status.SUCCEEDED:
        raise InvalidTransition(_("Only a succeeded payment can be refunded."), field="payment")
    refundable = payment_refundable_amount(payment)
    amount = _positive_amount(refundable if amount is None else amount, payment.currency)
    if amount > refundable:
        raise AmountExceedsBalance(_("At most %(amount)s %(currency)s can be refunded.")
                                   % {"amount": refundable, "currency": payment.currency}, field="amount")
    refund = Refund.objects.create(payment=payment, amount=amount, currency=payment.currency, reason=reason)
    event_emit(type="refund.initiated", creditor_id=payment.creditor_id, payload=payloads.refund_payload(refund),
               subjects={"refund": refund.pk, "payment": payment.pk, "customer": payment.customer_id})
    return refund


@transaction.atomic
def refund_record_success(*, refund: Refund, gateway_reference: str = "") -> Refund:
    refund = _lock(Refund, refund.pk)
    previous = _check_transition(refund, to="succeeded", allowed_from=[Refund.Status.PENDING])
    refund.status = Refund.Status.SUCCEEDED
    refund.gateway_reference = gateway_reference or refund.gateway_reference
    refund.completed_at = timezone.now()
    refund.save()
    event_emit(type="refund.succeeded", creditor_id=refund.payment.creditor_id,
               payload=payloads.refund_payload(refund, previous),
               subjects={"refund": refund.pk, "payment": refund.payment_id, "customer": refund.payment.customer_id})
    return refund


@transaction.atomic
def refund_record_failure(*, refund: Refund, reason: str) -> Refund:
    refund = _lock(Refund, refund.pk)
    previous = _check_transition(refund, to="failed", allowed_from=[Refund.Status.PENDING])
    refund.status = Refund.Status.FAILED
    refund.failure_reason = reason[:255]
    refund.completed_at = timezone.now()
    refund.save()
    event_emit(type="refund.failed", creditor_id=refund.payment.creditor_id,
               payload=payloads.refund_payload(refund, previous),
               subjects={"refund": refund.pk, "payment": refund.payment_id, "customer": refund.payment.customer_id})
    return refund


# --------------------------------------------------------------------------- mandates and cards


def iban_validate(value: str, *, field: str = "iban") -> IBAN:
    try:
        return IBAN(value)
    except SchwiftyException as exc:
        raise ValidationFailed(_("Invalid IBAN: %(error)s") % {"error": exc}, field=field) from exc


def _new_mandate_reference(creditor: Creditor, customer: Customer) -> str:
    # UMR: up to 35 chars of the SEPA character set; unique per creditor.
    return f"ENC-{customer.pk}-{secrets.token_hex(6).upper()}"


@transaction.atomic
def mandate_create(*, creditor: Creditor, customer: Customer, holder_name: str, iban: str, bic: str = "",
                   signed_at: dt.datetime | None = None, signature_ip: str | None = None,
                   signature_user_agent: str = "", reference: str | None = None,
                   scheme: str = Mandate.Scheme.CORE) -> Mandate:
    if customer.creditor_id != creditor.pk:
        raise ValidationFailed(_("The customer belongs to another creditor."), field="customer")
    if not holder_name.strip():
        raise ValidationFailed(_("Enter the account holder's name."), field="holder_name")
    parsed = iban_validate(iban)
    derived_bic = bic.strip().upper()
    if not derived_bic and parsed.bic is not None:
        derived_bic = str(parsed.bic)
    reference = reference or _new_mandate_reference(creditor, customer)
    if Mandate.objects.filter(creditor=creditor, reference=reference).exists():
        raise Conflict(_("A mandate with this reference already exists."), field="reference",
                       code="duplicate_reference")
    mandate = Mandate.objects.create(
        creditor=creditor, customer=customer, reference=reference, holder_name=holder_name.strip(),
        iban=parsed.compact, bic=derived_bic, signed_at=signed_at or timezone.now(), signature_ip=signature_ip,
        signature_user_agent=signature_user_agent[:1000], scheme=scheme,
    )
    event_emit(type="mandate.created", creditor_id=creditor.pk, payload=payloads.mandate_payload(mandate),
               subjects={"mandate": mandate.pk, "customer": customer.pk})
    return mandate


@transaction.atomic
def mandate_cancel(*, mandate: Mandate, cancelled_by: str = "creditor") -> Mandate:
    mandate = _lock(Mandate, mandate.pk)
    previous = _check_transition(mandate, to="cancelled", allowed_from=[Mandate.Status.ACTIVE])
    mandate.status = Mandate.Status.CANCELLED
    mandate.cancelled_at = timezone.now()
    mandate.save()
    event_emit(type="mandate.cancelled", creditor_id=mandate.creditor_id,
               payload=payloads.mandate_payload(mandate, previous, cancelled_by=cancelled_by),
               subjects={"mandate": mandate.pk, "customer": mandate.customer_id})
    return mandate


@transaction.atomic
def mandate_expire(*, mandate: Mandate) -> Mandate:
    mandate = _lock(Mandate, mandate.pk)
    previous = _check_transition(mandate, to="expired", allowed_from=[Mandate.Status.ACTIVE])
    mandate.status = Mandate.Status.EXPIRED
    mandate.save(update_fields=["status", "updated_at"])
    event_emit(type="mandate.expired", creditor_id=mandate.creditor_id,
               payload=payloads.mandate_payload(mandate, previous),
               subjects={"mandate": mandate.pk, "customer": mandate.customer_id})
    return mandate


@transaction.atomic
def saved_card_create(*, customer: Customer, gateway: str, gateway_token: str, brand: str, last4: str,
                      exp_month: int, exp_year: int) -> SavedCard:
    if not (len(last4) == 4 and last4.isdigit()):
        raise ValidationFailed(_("last4 must be 4 digits."), field="last4")
    card = SavedCard.objects.create(customer=customer, gateway=gateway, gateway_token=gateway_token,
                                    brand=brand, last4=last4, exp_month=exp_month, exp_year=exp_year)
    event_emit(type="card.saved", creditor_id=customer.creditor_id, payload=payloads.card_payload(card),
               subjects={"saved_card": card.pk, "customer": customer.pk})
    return card


@transaction.atomic
def saved_card_remove(*, card: SavedCard) -> SavedCard:
    card = _lock(SavedCard, card.pk)
    _check_transition(card, to="removed", allowed_from=[SavedCard.Status.ACTIVE, SavedCard.Status.EXPIRED])
    card.status = SavedCard.Status.REMOVED
    card.save(update_fields=["status", "updated_at"])
    event_emit(type="card.removed", creditor_id=card.customer.creditor_id, payload=payloads.card_payload(card),
               subjects={"saved_card": card.pk, "customer": card.customer_id})
    return card


@transaction.atomic
def saved_card_expire(*, card: SavedCard, today: dt.date | None = None) -> SavedCard:
    """A card past its expiry month can no longer be charged."""
    card = _lock(SavedCard, card.pk)
    _check_transition(card, to="expired", allowed_from=[SavedCard.Status.ACTIVE])
    today = today or timezone.localdate()
    if (card.exp_year, card.exp_month) >= (today.year, today.month):
        raise InvalidTransition(_("This card has not expired yet."))
    card.status = SavedCard.Status.EXPIRED
    card.save(update_fields=["status", "updated_at"])
    event_emit(type="card.expired", creditor_id=card.customer.creditor_id, payload=payloads.card_payload(card),
               subjects={"saved_card": card.pk, "customer": card.customer_id})
    return card


# --------------------------------------------------------------------------- instalment plans


def _add_months(day: dt.date, months: int) -> dt.date:
    import calendar

    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def instalment_schedule_build(*, total: Decimal, count: int, first_due_date: dt.date, currency: str = "EUR",
                              interval_months: int = 1) -> list[tuple[dt.date, Decimal]]:
    """Equal monthly instalments adding up exactly to the total (the first carries the cents)."""
    if not 2 <= count <= 12:
        raise ValidationFailed(_("An instalment plan has 2 to 12 instalments."), field="count")
    amounts = split_evenly(total, count, currency)
    return [(_add_months(first_due_date, i * interval_months), amounts[i]) for i in range(count)]


@transaction.atomic
def installment_plan_create(*, customer: Customer, method: str, schedule: Sequence[tuple[dt.date, Any]],
                            payment_request: PaymentRequest | None = None, mandate: Mandate | None = None,
                            saved_card: SavedCard | None = None, origin: str = InstallmentPlan.Origin.OPERATOR,
                            created_by: Any = None, currency: str | None = None) -> InstallmentPlan:
    if method not in (PaymentMethod.CARD, PaymentMethod.SEPA_DD, PaymentMethod.TRANSFER):
        raise ValidationFailed(_("Instalments are paid by card, SEPA direct debit or transfer."), field="method")
    if not 2 <= len(schedule) <= 12:
        raise ValidationFailed(_("An instalment plan has 2 to 12 instalments."), field="schedule")
    request = None
    if payment_request is not None:
        request = _lock(PaymentRequest, payment_request.pk)
        if request.customer_id != customer.pk:
            raise ValidationFailed(_("The payment request belongs to another customer."), field="payment_request")
        if request.status not in PaymentRequest.OPEN_STATUSES:
            raise InvalidTransition(_("This payment request is %(status)s.") % {"status": request.get_status_display()})
        if InstallmentPlan.objects.filter(payment_request=request, status=InstallmentPlan.Status.ACTIVE).exists():
            raise Conflict(_("This payment request already has an active instalment plan."),
                           field="payment_request")
        currency = request.currency
    currency = _currency(currency, customer.currency)
    if mandate is not None and (mandate.customer_id != customer.pk or mandate.status != Mandate.Status.ACTIVE):
        raise ValidationFailed(_("The mandate is not an active mandate of this customer."), field="mandate")
    if saved_card is not None and (saved_card.customer_id != customer.pk
                                   or saved_card.status != SavedCard.Status.ACTIVE):
        raise ValidationFailed(_("The card is not an active card of this customer."), field="saved_card")
    lines = []
    previous_date = None
    for index, (due_date, amount) in enumerate(schedule, start=1):
        amount = _positive_amount(amount, currency, field=f"schedule[{index}].amount")
        if previous_date is not None and due_date <= previous_date:
            raise ValidationFailed(_("Instalment dates must be in increasing order."), field="schedule")
        previous_date = due_date
        lines.append((due_date, amount))
    total = sum((a for _d, a in lines), ZERO)
    if request is not None and total != request.amount_due:
        raise ValidationFailed(_("The instalments must add up to the %(amount)s %(currency)s due.")
                               % {"amount": request.amount_due, "currency": currency}, field="schedule")
    plan = InstallmentPlan.objects.create(
        creditor_id=customer.creditor_id, customer=customer, payment_request=request, method=method,
        mandate=mandate, saved_card=saved_card, currency=currency, total_amount=total, origin=origin,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    Installment.objects.bulk_create([
        Installment(plan=plan, sequence=i, due_date=d, amount=a, currency=currency)
        for i, (d, a) in enumerate(lines, start=1)
    ])
    event_emit(type="instalment_plan.created", creditor_id=plan.creditor_id, payload=payloads.plan_payload(plan),
               subjects={"instalment_plan": plan.pk, "customer": customer.pk,
                         "payment_request": plan.payment_request_id})
    return plan


@transaction.atomic
def recurring_plan_create(*, customer: Customer, method: str, amount: Any, first_due_date: dt.date,
                          every_months: int = 1, ends_on: dt.date | None = None, mandate: Mandate | None = None,
                          saved_card: SavedCard | None = None, currency: str | None = None,
                          origin: str = InstallmentPlan.Origin.OPERATOR, created_by: Any = None,
                          today: dt.date | None = None) -> InstallmentPlan:
    """A recurring payment (a monthly fee, a subscription) collected by SEPA direct debit or card
    on file: the same amount every `every_months` months from `first_due_date`, until `ends_on`
    or cancellation. Its instalments are scheduled ahead by recurring_plans_extend."""
    if method not in (PaymentMethod.CARD, PaymentMethod.SEPA_DD):
        raise ValidationFailed(_("Recurring payments are collected by card or SEPA direct debit."), field="method")
    if method == PaymentMethod.SEPA_DD and mandate is None:
        raise ValidationFailed(_("A recurring direct debit needs a mandate."), field="mandate")
    if method == PaymentMethod.CARD and saved_card is None:
        raise ValidationFailed(_("A recurring card payment needs a saved card."), field="saved_card")
    if not 1 <= every_months <= 12:
        raise ValidationFailed(_("A payment recurs every 1 to 12 months."), field="every_months")
    if ends_on is not None and ends_on < first_due_date:
        raise ValidationFailed(_("The end date is before the first collection."), field="ends_on")
    if mandate is not None and (mandate.customer_id != customer.pk or mandate.status != Mandate.Status.ACTIVE):
        raise ValidationFailed(_("The mandate is not an active mandate of this customer."), field="mandate")
    if saved_card is not None and (saved_card.customer_id != customer.pk
                                   or saved_card.status != SavedCard.Status.ACTIVE):
        raise ValidationFailed(_("The card is not an active card of this customer."), field="saved_card")
    currency = _currency(currency, customer.currency)
    amount = _positive_amount(amount, currency)
    plan = InstallmentPlan.objects.create(
        creditor_id=customer.creditor_id, customer=customer, method=method, mandate=mandate, saved_card=saved_card,
        currency=currency, total_amount=amount, origin=origin, recurrence_months=every_months,
        recurring_amount=amount, ends_on=ends_on, created_by=created_by if getattr(created_by, "pk", None) else None)
    Installment.objects.create(plan=plan, sequence=1, due_date=first_due_date, amount=amount, currency=currency)
    _recurring_extend(plan, horizon=(today or timezone.localdate()) + dt.timedelta(days=RECURRING_HORIZON_DAYS))
    event_emit(type="instalment_plan.created", creditor_id=plan.creditor_id, payload=payloads.plan_payload(plan),
               subjects={"instalment_plan": plan.pk, "customer": customer.pk})
    return plan


# Far enough ahead for the pre-notification (14 days) and the SEPA lead times.
RECURRING_HORIZON_DAYS = 45


def _recurring_due_date(plan: InstallmentPlan, sequence: int, first: dt.date) -> dt.date:
    return _add_months(first, (sequence - 1) * plan.recurrence_months)


def _recurring_has_more(plan: InstallmentPlan) -> bool:
    """A recurring plan is only complete once its end date leaves no further collection."""
    if not plan.recurrence_months:
        return False
    if plan.ends_on is None:
        return True
    last = plan.installments.order_by("-sequence").first()
    first = plan.installments.order_by("sequence").first()
    return _recurring_due_date(plan, last.sequence + 1, first.due_date) <= plan.ends_on


def _recurring_extend(plan: InstallmentPlan, *, horizon: dt.date) -> list[Installment]:
    installments = list(plan.installments.order_by("sequence"))
    first, last = installments[0], installments[-1]
    created = []
    sequence = last.sequence
    while True:
        due = _recurring_due_date(plan, sequence + 1, first.due_date)
        if due > horizon or (plan.ends_on is not None and due > plan.ends_on):
            break
        sequence += 1
        created.append(Installment(plan=plan, sequence=sequence, due_date=due, amount=plan.recurring_amount,
                                   currency=plan.currency))
    if created:
        Installment.objects.bulk_create(created)
        plan.total_amount = plan.total_amount + sum((i.amount for i in created), ZERO)
        plan.save(update_fields=["total_amount", "updated_at"])
    return created


def recurring_plans_extend(*, today: dt.date | None = None) -> int:
    """Schedule the next instalments of every active recurring plan up to the horizon. Safe to
    run twice or in two workers: plans are claimed with SKIP LOCKED and (plan, sequence) is unique."""
    horizon = (today or timezone.localdate()) + dt.timedelta(days=RECURRING_HORIZON_DAYS)
    ids = list(InstallmentPlan.objects.filter(recurrence_months__isnull=False, status=InstallmentPlan.Status.ACTIVE)
               .values_list("pk", flat=True).order_by("pk"))
    count = 0
    for pk in ids:
        with transaction.atomic():
            plan = (InstallmentPlan.objects.select_for_update(skip_locked=True)
                    .filter(pk=pk, status=InstallmentPlan.Status.ACTIVE).first())
            if plan is None:
                continue
            count += len(_recurring_extend(plan, horizon=horizon))
    return count


def _plan_set_status(plan: InstallmentPlan, *, to: str, allowed_from: Iterable[str], event_type: str,
                     **extra: Any) -> InstallmentPlan:
    plan = _lock(InstallmentPlan, plan.pk)
    previous = _check_transition(plan, to=to, allowed_from=allowed_from)
    plan.status = to
    plan.save(update_fields=["status", "updated_at"])
    if to == InstallmentPlan.Status.CANCELLED:
        plan.installments.filter(status=Installment.Status.SCHEDULED).update(status=Installment.Status.CANCELLED)
    event_emit(type=event_type, creditor_id=plan.creditor_id, payload=payloads.plan_payload(plan, previous, **extra),
               subjects={"instalment_plan": plan.pk, "customer": plan.customer_id,
                         "payment_request": plan.payment_request_id})
    return plan


@transaction.atomic
def installment_plan_cancel(*, plan: InstallmentPlan) -> InstallmentPlan:
    return _plan_set_status(plan, to=InstallmentPlan.Status.CANCELLED,
                            allowed_from=[InstallmentPlan.Status.ACTIVE, InstallmentPlan.Status.SUSPENDED],
                            event_type="instalment_plan.cancelled")


@transaction.atomic
def installment_plan_suspend(*, plan: InstallmentPlan, reason: str = "") -> InstallmentPlan:
    return _plan_set_status(plan, to=InstallmentPlan.Status.SUSPENDED, allowed_from=[InstallmentPlan.Status.ACTIVE],
                            event_type="instalment_plan.suspended", reason=reason)


@transaction.atomic
def installment_plan_resume(*, plan: InstallmentPlan) -> InstallmentPlan:
    return _plan_set_status(plan, to=InstallmentPlan.Status.ACTIVE, allowed_from=[InstallmentPlan.Status.SUSPENDED],
                            event_type="instalment_plan.resumed")


def _installment_mark_paid(*, installment_id: int, payment: Payment) -> None:
    installment = _lock(Installment, installment_id)
    previous = _check_transition(installment, to="paid", allowed_from=[
        Installment.Status.SCHEDULED, Installment.Status.PROCESSING, Installment.Status.FAILED])
    installment.status = Installment.Status.PAID
    installment.paid_at = timezone.now()
    installment.save(update_fields=["status", "paid_at", "updated_at"])
    event_emit(type="installment.paid", creditor_id=payment.creditor_id,
               payload=payloads.installment_payload(installment, previous, payment_id=payment.pk),
               subjects={"installment": installment.pk, "instalment_plan": installment.plan_id,
                         "customer": payment.customer_id})
    plan = _lock(InstallmentPlan, installment.plan_id)
    if plan.status == InstallmentPlan.Status.ACTIVE and not _recurring_has_more(plan) and not plan.installments.exclude(
            status__in=[Installment.Status.PAID, Installment.Status.CANCELLED]).exists():
        _plan_set_status(plan, to=InstallmentPlan.Status.COMPLETED, allowed_from=[InstallmentPlan.Status.ACTIVE],
                         event_type="instalment_plan.completed")


def _installment_mark_failed(*, installment_id: int, payment: Payment) -> RetryDecision | None:
    """Every failure of an instalment payment passes here, whatever its source (status report,
    statement return, gateway decline): the retry policy decides what follows. Returns the
    retry decision (collections_app.retries), which the caller applies after its own event."""
    from collections_app.retries.services import attempt_failure_decide

    installment = _lock(Installment, installment_id)
    previous = installment.status
    if previous == Installment.Status.CANCELLED:
        return None
    installment.status = Installment.Status.FAILED
    installment.paid_at = None
    installment.save(update_fields=["status", "paid_at", "updated_at"])
    event_emit(type="installment.failed", creditor_id=payment.creditor_id,
               payload=payloads.installment_payload(installment, previous, payment_id=payment.pk,
                                                    reason_code=payment.reason_code),
               subjects={"installment": installment.pk, "instalment_plan": installment.plan_id,
                         "customer": payment.customer_id})
    return attempt_failure_decide(installment=installment, payment=payment)
