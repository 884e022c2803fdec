"""Turning a matched bank transaction into payments of the collections core.

The money goes to the referenced debt first (the payment request, or the referenced invoices),
otherwise to the customer's open invoices oldest first; a partial payment leaves the rest
open; an over-payment goes to the customer's credit balance, or first to the customer's other
open invoices when the bank account says so; a shortfall within the account's tolerance is
written off. With the rules of collections_app.services, so balances, statuses and events are
exactly those of any other payment: allocate() calls the services for one transfer (one-click
admin actions, rule 3); allocate_bulk() does the same for a chunk's automatic matches on a
collections_app.bulk.PaymentLedger, set-based.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app.bulk import PaymentLedger, copy_insert, update_from_values
from collections_app.errors import DomainError, InvalidTransition, ValidationFailed
from collections_app.models import Customer, Invoice, Payment, PaymentMethod, PaymentRequest
from collections_app.services import (
    AllocationLine,
    invoice_write_off,
    payment_create,
    payment_record_success,
    payment_request_reserved_amount,
)
from reconciliation.events import transaction_event, transaction_event_row
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


def _check_allocatable(tx: BankTransaction) -> None:
    """An incoming transfer, not matched yet."""
    if tx.direction != BankTransaction.Direction.CREDIT or tx.is_reversal:
        raise InvalidTransition(_("Only incoming transfers can be allocated."))
    if tx.status not in (BankTransaction.Status.NEW, BankTransaction.Status.UNMATCHED):
        raise InvalidTransition(_("This bank transaction is already %(status)s.") % {"status": tx.get_status_display()})


def _check_customer(tx: BankTransaction, customer: Customer) -> None:
    if tx.creditor_id and customer.creditor_id != tx.creditor_id:
        raise ValidationFailed(_("The customer belongs to another creditor than the bank account."), field="customer")


def allocate(tx: BankTransaction, target: Target, *, rule: MatchingRule | None = None, user: Any = None,
             lines: list[AllocationLine] | None = None) -> Match:
    """Allocate an incoming transfer; `lines` (from the review queue) overrides the automatic split."""
    _check_allocatable(tx)
    customer = Customer.objects.get(pk=target.customer_id)
    _check_customer(tx, customer)
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


# --------------------------------------------------------------------------- many at once


def allocate_many(items: list[tuple[BankTransaction, Target, MatchingRule | None]]) -> set[int]:
    """allocate() for the automatic matches of a chunk, in their order; returns the ids of the
    transactions allocated (the others raised a DomainError and stay for review).

    On PostgreSQL, runs of transfers that become new payments go through one PaymentLedger
    (set-based, see collections_app.bulk); a credit settling one of our own direct debits
    (rule 3) goes through the per-row services, after what comes before it is written, so
    that the outcome is the one of allocating each transfer in turn.
    """
    done: set[int] = set()
    run: list[tuple[BankTransaction, Target, MatchingRule | None]] = []

    def write_run() -> None:
        if run:
            done.update(allocate_bulk(run))
            run.clear()

    for tx, target, rule in items:
        if target.payment_id is None and connection.vendor == "postgresql":
            run.append((tx, target, rule))
            continue
        write_run()
        try:
            with transaction.atomic():
                allocate(tx, target, rule=rule)
            done.add(tx.pk)
        except DomainError:
            pass
    write_run()
    return done


@transaction.atomic
def allocate_bulk(items: list[tuple[BankTransaction, Target, MatchingRule | None]]) -> set[int]:
    """Automatic allocations of incoming transfers to new payments, set-based: the same rows and
    events as allocate() called for each item in turn. Items with a target payment_id are refused."""
    if any(target.payment_id is not None for _tx, target, _rule in items):
        raise ValueError("allocate_bulk does not settle existing payments; use allocate()")
    quoted = {pk for _tx, target, _rule in items if target.invoice_ids and not target.payment_request_id
              for pk in target.invoice_ids}
    open_links: dict[int, set[int]] = defaultdict(set)
    if quoted:
        through = PaymentRequest.invoices.through
        for request_id, invoice_id in (through.objects.filter(invoice_id__in=quoted,
                                                              paymentrequest__status__in=PaymentRequest.OPEN_STATUSES)
                                       .values_list("paymentrequest_id", "invoice_id")):
            open_links[invoice_id].add(request_id)
    ledger = PaymentLedger.lock(
        customer_ids={target.customer_id for _tx, target, _rule in items},
        invoice_ids={pk for _tx, target, _rule in items for pk in target.invoice_ids},
        request_ids={t.payment_request_id for _tx, t, _rule in items if t.payment_request_id}
        | {pk for ids in open_links.values() for pk in ids},
        # Oldest-first over the customer's other invoices only happens without a quoted invoice
        # (or with the spread setting): only those customers' open invoices need locking.
        open_invoices_of={target.customer_id for tx, target, _rule in items
                          if not target.invoice_ids or tx.bank_account.overpayment == BankAccount.Overpayment.SPREAD})
    matches, changed, done = [], [], set()
    for tx, target, rule in items:
        try:
            matches.append(_allocate_in_ledger(ledger, tx, target, rule, open_links))
        except DomainError:
            continue
        changed.append(tx)
        done.add(tx.pk)
    ledger.flush()
    copy_insert(Match, matches)
    update_from_values(BankTransaction, ["status", "customer", "matched_rule"], changed)
    return done


def _allocate_in_ledger(ledger: PaymentLedger, tx: BankTransaction, target: Target, rule: MatchingRule | None,
                        open_links: dict[int, set[int]]) -> Match:
    """allocate() without `lines` nor `user`, against the ledger's state. Checks first: a
    DomainError leaves the ledger unchanged."""
    _check_allocatable(tx)
    customer = ledger.customers[target.customer_id]
    _check_customer(tx, customer)
    account: BankAccount = tx.bank_account
    amount = tx.amount
    main: Payment | None = None
    excess: Payment | None = None
    payment_request = None
    if target.invoice_ids and not target.payment_request_id:
        requests = {pk for invoice_id in target.invoice_ids for pk in open_links.get(invoice_id, ())
                    if ledger.requests[pk].status in PaymentRequest.OPEN_STATUSES}
        if len(requests) == 1:
            target.payment_request_id = requests.pop()
    if target.payment_request_id:
        candidate = ledger.requests[target.payment_request_id]
        if (candidate.status in PaymentRequest.OPEN_STATUSES and candidate.currency == tx.currency
                and (candidate.expires_at is None or candidate.expires_at > timezone.now())):
            payment_request = candidate
    payment = {"method": PaymentMethod.TRANSFER, "currency": tx.currency, "gateway": "bank",
               "gateway_reference": tx.bank_reference, "end_to_end_id": tx.end_to_end_id[:35]}
    referenced: list[Invoice] = []
    if payment_request is not None:
        available = payment_request.amount_due - ledger.request_reserved(payment_request.pk)
        if available > 0:
            part = min(amount, available)
            main = ledger.payment_succeed(customer_id=customer.pk, amount=part,
                                          payment_request_id=payment_request.pk, **payment)
            amount -= part
        referenced = ledger.request_invoices(payment_request.pk)
    elif target.payment_request_id:
        referenced = ledger.request_invoices(target.payment_request_id)
    elif target.invoice_ids:
        referenced = sorted((ledger.invoices[pk] for pk in target.invoice_ids if pk in ledger.invoices),
                            key=lambda i: (i.due_date, i.pk))
    if amount > 0:
        ref_open = [i for i in referenced if i.status in Invoice.OPEN_STATUSES and i.currency == tx.currency]
        chosen, left = _lines(ref_open, amount)
        spread = account.overpayment == BankAccount.Overpayment.SPREAD or not referenced
        if left > 0 and spread:
            more, left = _lines(ledger.open_invoices(customer.pk, tx.currency, {i.pk for i in referenced}), left)
            chosen += more
        paid = ledger.payment_succeed(customer_id=customer.pk, amount=amount,
                                      allocations=[(line.invoice.pk, line.amount) for line in chosen], **payment)
        if main is None:
            main = paid
        else:
            excess = paid
    written_off = ZERO
    tolerance = account.write_off_tolerance
    if tolerance > 0 and referenced:
        for invoice in sorted((i for i in referenced if i.status == Invoice.Status.PARTIALLY_PAID),
                              key=lambda i: (i.due_date, i.pk)):
            due = invoice.amount_due
            if 0 < due <= tolerance:
                written_off += ledger.invoice_write_off(invoice_id=invoice.pk, max_amount=tolerance)
    match = Match(transaction=tx, rule=rule, customer=customer, payment=main, excess_payment=excess,
                  payment_request=payment_request, amount=tx.amount, written_off=written_off)
    previous = tx.status
    tx.status = BankTransaction.Status.MATCHED
    tx.customer = customer
    tx.matched_rule = rule
    event_type, creditor_id, event_payload, subjects = transaction_event_row(
        tx, "reconciliation.matched", previous, rule=rule.kind if rule else "manual", customer_id=customer.pk,
        payment_id=main.pk if main else None, allocated_amount=match.amount, written_off_amount=written_off)
    ledger.event_add(type=event_type, creditor_id=creditor_id, payload=event_payload, subjects=subjects)
    return match
