"""Turning a matched bank transaction into payments of the collections core.

The money goes to the referenced debt first (the payment request, or the referenced invoices),
otherwise to the customer's open invoices oldest first; a partial payment leaves the rest
open; an over-payment goes to the customer's credit balance, or first to the customer's other
open invoices when the bank account says so; a shortfall within the account's tolerance is
written off. All of it through collections_app.services, so balances, statuses and events are
exactly those of any other payment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app.errors import InvalidTransition, ValidationFailed
from collections_app.models import Customer, Invoice, Payment, PaymentMethod, PaymentRequest
from collections_app.services import (
    AllocationLine,
    invoice_write_off,
    payment_create,
    payment_record_success,
    payment_request_reserved_amount,
)
from reconciliation.events import transaction_event
from reconciliation.models import BankAccount, BankTransaction, Match, MatchingRule

ZERO = Decimal("0.00")


@dataclass
class Target:
    customer_id: int
    payment_request_id: int | None = None
    invoice_ids: list[int] = field(default_factory=list)
    payment_id: int | None = None  # our own direct debit, settled by this credit
    reason: str = ""


def _open_invoices(customer: Customer, currency: str, exclude: set[int]) -> list[Invoice]:
    return list(Invoice.objects.filter(customer=customer, currency=currency, status__in=Invoice.OPEN_STATUSES)
                .exclude(pk__in=exclude).order_by("due_date", "pk"))


def _lines(invoices: list[Invoice], amount: Decimal) -> tuple[list[AllocationLine], Decimal]:
    lines, remaining = [], amount
    for invoice in invoices:
        if remaining <= 0:
            break
        part = min(invoice.amount_due, remaining)
        if part > 0:
            lines.append(AllocationLine(invoice=invoice, amount=part))
            remaining -= part
    return lines, remaining


def allocate(tx: BankTransaction, target: Target, *, rule: MatchingRule | None = None, user: Any = None,
             lines: list[AllocationLine] | None = None) -> Match:
    """Allocate an incoming transfer; `lines` (from the review queue) overrides the automatic split."""
    if tx.direction != BankTransaction.Direction.CREDIT or tx.is_reversal:
        raise InvalidTransition(_("Only incoming transfers can be allocated."))
    if tx.status not in (BankTransaction.Status.NEW, BankTransaction.Status.UNMATCHED):
        raise InvalidTransition(_("This bank transaction is already %(status)s.") % {"status": tx.get_status_display()})
    customer = Customer.objects.get(pk=target.customer_id)
    if tx.creditor_id and customer.creditor_id != tx.creditor_id:
        raise ValidationFailed(_("The customer belongs to another creditor than the bank account."), field="customer")
    account: BankAccount = tx.bank_account
    amount = tx.amount
    main: Payment | None = None
    excess: Payment | None = None
    payment_request = None

    if target.payment_id is not None:
        main = Payment.objects.get(pk=target.payment_id)
        if main.amount != amount:
            raise ValidationFailed(_("The amount differs from the direct debit's."), field="amount")
        payment_record_success(payment=main, gateway_reference=tx.bank_reference)
        remaining = ZERO
    else:
        if target.invoice_ids and not target.payment_request_id and lines is None:
            # An invoice number quoted for an invoice that has its own pay link: settle the link too.
            requests = list(PaymentRequest.objects.filter(invoices__in=target.invoice_ids,
                                                          status__in=PaymentRequest.OPEN_STATUSES)
                            .distinct().values_list("pk", flat=True)[:2])
            if len(requests) == 1:
                target.payment_request_id = requests[0]
        if target.payment_request_id and lines is None:
            candidate = PaymentRequest.objects.get(pk=target.payment_request_id)
            if (candidate.status in PaymentRequest.OPEN_STATUSES and candidate.currency == tx.currency
                    and (candidate.expires_at is None or candidate.expires_at > timezone.now())):
                payment_request = candidate
        referenced: list[Invoice] = []
        if payment_request is not None:
            available = payment_request.amount_due - payment_request_reserved_amount(payment_request)
            if available > 0:
                part = min(amount, available)
                main = payment_create(customer=customer, method=PaymentMethod.TRANSFER, amount=part,
                                      currency=tx.currency, payment_request=payment_request, gateway="bank",
                                      gateway_reference=tx.bank_reference, end_to_end_id=tx.end_to_end_id[:35])
                payment_record_success(payment=main)
                amount -= part
            referenced = list(payment_request.invoices.all())
        elif target.payment_request_id:
            referenced = list(PaymentRequest.objects.get(pk=target.payment_request_id).invoices.all())
        elif target.invoice_ids:
            referenced = list(Invoice.objects.filter(pk__in=target.invoice_ids).order_by("due_date", "pk"))
        remaining = amount
        if amount > 0:
            if lines is not None:
                chosen = lines
            else:
                ref_open = [i for i in referenced if i.status in Invoice.OPEN_STATUSES and i.currency == tx.currency]
                chosen, left = _lines(ref_open, amount)
                spread = account.overpayment == BankAccount.Overpayment.SPREAD or not referenced
                if left > 0 and spread:
                    more, left = _lines(_open_invoices(customer, tx.currency, {i.pk for i in referenced}), left)
                    chosen += more
            payment = payment_create(customer=customer, method=PaymentMethod.TRANSFER, amount=amount,
                                     currency=tx.currency, gateway="bank", gateway_reference=tx.bank_reference,
                                     end_to_end_id=tx.end_to_end_id[:35])
            payment_record_success(payment=payment, allocations=chosen)
            if main is None:
                main = payment
            else:
                excess = payment
        remaining = ZERO
        written_off = ZERO
        tolerance = account.write_off_tolerance
        if tolerance > 0 and referenced and lines is None:
            for invoice in Invoice.objects.filter(pk__in=[i.pk for i in referenced],
                                                  status=Invoice.Status.PARTIALLY_PAID):
                due = invoice.amount_due
                if 0 < due <= tolerance:
                    invoice_write_off(invoice=invoice, max_amount=tolerance)
                    written_off += due
    if target.payment_id is not None:
        written_off = ZERO
    match = Match.objects.create(transaction=tx, rule=rule, customer=customer, payment=main, excess_payment=excess,
                                 payment_request=payment_request, amount=tx.amount - remaining,
                                 written_off=written_off, created_by=user if getattr(user, "pk", None) else None)
    previous = tx.status
    tx.status = BankTransaction.Status.MATCHED
    tx.customer = customer
    tx.matched_rule = rule
    tx.save(update_fields=["status", "customer", "matched_rule"])
    transaction_event(tx, "reconciliation.matched", previous, rule=rule.kind if rule else "manual",
                      customer_id=customer.pk, payment_id=main.pk if main else None, allocated_amount=match.amount,
                      written_off_amount=written_off)
    return match
