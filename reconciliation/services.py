"""Business operations of reconciliation: import, matching and the review queue.

Import and automatic matching live in reconciliation.imports and reconciliation.matching;
the review queue's operations (one-click match, split, unmatch, ignore) are here.
"""
from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app.errors import InvalidTransition, ValidationFailed
from collections_app.models import Creditor, Customer, Invoice, Payment
from collections_app.money import round_money
from collections_app.services import AllocationLine, invoice_write_off_reverse, payment_reverse
from reconciliation.allocation import Target, allocate
from reconciliation.events import transaction_event
from reconciliation.imports import ImportResult, statement_import  # noqa: F401 - the app's entry points
from reconciliation.matching import matching_rules_ensure, transactions_match  # noqa: F401
from reconciliation.models import BankAccount, BankTransaction, Match, MatchingRule, Suggestion

UNMATCH_REASON = "UNMATCHED"


def _lock_tx(tx: BankTransaction) -> BankTransaction:
    return BankTransaction.objects.select_for_update(of=("self",)).select_related("bank_account").get(pk=tx.pk)


@transaction.atomic
def suggestion_accept(*, suggestion: Suggestion, user: Any = None) -> Match:
    """One-click match from the review queue: the suggested invoice first, the rest as usual."""
    tx = _lock_tx(suggestion.transaction)
    return allocate(tx, Target(customer_id=suggestion.customer_id, invoice_ids=[suggestion.invoice_id],
                               reason=suggestion.reason), user=user)


@transaction.atomic
def transaction_match_manual(*, transaction_: BankTransaction, customer: Customer,
                             lines: Sequence[tuple[Invoice, Decimal]] = (), user: Any = None) -> Match:
    """Match by hand, split across the given invoices; what is left goes to the credit balance."""
    tx = _lock_tx(transaction_)
    allocation_lines = []
    total = Decimal("0.00")
    for invoice, amount in lines:
        amount = round_money(amount, tx.currency)
        if amount <= 0:
            raise ValidationFailed(_("Each amount must be greater than zero."), field="lines")
        if invoice.customer_id != customer.pk:
            raise ValidationFailed(_("Invoice %(ref)s belongs to another customer.") % {"ref": invoice.external_ref},
                                   field="lines")
        if amount > invoice.amount_due:
            raise ValidationFailed(_("%(amount)s is more than the %(due)s due on invoice %(ref)s.")
                                   % {"amount": amount, "due": invoice.amount_due, "ref": invoice.external_ref},
                                   field="lines")
        allocation_lines.append(AllocationLine(invoice=invoice, amount=amount))
        total += amount
    if total > tx.amount:
        raise ValidationFailed(_("The split (%(total)s) is more than the transfer (%(amount)s).")
                               % {"total": total, "amount": tx.amount}, field="lines")
    return allocate(tx, Target(customer_id=customer.pk, reason="manual"), user=user, lines=allocation_lines)


@transaction.atomic
def match_reverse(*, match: Match, user: Any = None) -> BankTransaction:
    """Unmatch: reverse the payments (their allocations, statuses and credit balance, each with
    its event) and put the transaction back in the review queue."""
    match = Match.objects.select_for_update().get(pk=match.pk)
    if match.status != Match.Status.ACTIVE:
        raise InvalidTransition(_("This match is already reversed."))
    tx = _lock_tx(match.transaction)
    if match.written_off and match.payment_id:
        # The tolerance write-off came with this transfer: it goes with it.
        for invoice in (Invoice.objects.filter(allocations__payment_id=match.payment_id,
                                               status=Invoice.Status.WRITTEN_OFF).order_by("pk")):
            invoice_write_off_reverse(invoice=invoice)
    for payment in (match.excess_payment, match.payment):
        if payment is not None and payment.status == Payment.Status.SUCCEEDED:
            payment_reverse(payment=payment, reason_code=UNMATCH_REASON,
                            reason_message=_("Unmatched in the reconciliation review queue"))
    match.status = Match.Status.REVERSED
    match.reversed_at = timezone.now()
    match.save(update_fields=["status", "reversed_at"])
    if match.rule_id:
        MatchingRule.objects.filter(pk=match.rule_id, matched_count__gt=0).update(
            matched_count=F("matched_count") - 1)
    previous = tx.status
    tx.status = BankTransaction.Status.UNMATCHED
    tx.matched_rule = None
    tx.save(update_fields=["status", "matched_rule"])
    transaction_event(tx, "reconciliation.match_reversed", previous,
                      payment_id=match.payment_id)
    return tx


@transaction.atomic
def transaction_unmatch(*, transaction_: BankTransaction, user: Any = None) -> BankTransaction:
    """Reverse every allocation of a transaction at once (a transfer split over several
    matches is unmatched whole, or not at all)."""
    for match in transaction_.matches.filter(status=Match.Status.ACTIVE).order_by("pk"):
        match_reverse(match=match, user=user)
    transaction_.refresh_from_db()
    return transaction_


@transaction.atomic
def transaction_ignore(*, transaction_: BankTransaction, user: Any = None) -> BankTransaction:
    tx = _lock_tx(transaction_)
    if tx.status not in (BankTransaction.Status.NEW, BankTransaction.Status.UNMATCHED):
        raise InvalidTransition(_("Only a transaction waiting for review can be ignored."))
    previous = tx.status
    tx.status = BankTransaction.Status.IGNORED
    tx.save(update_fields=["status"])
    transaction_event(tx, "reconciliation.ignored", previous)
    return tx


@transaction.atomic
def bank_account_review(*, account: BankAccount, creditor: Creditor | None) -> BankAccount:
    """Finance staff confirm an account created by an import: its creditor, and so that of the
    transactions already imported on it (the rules then look only at that creditor's debts)."""
    account = BankAccount.objects.select_for_update().get(pk=account.pk)
    account.creditor = creditor
    account.needs_review = False
    account.save(update_fields=["creditor", "needs_review", "updated_at"])
    if creditor is not None:
        BankTransaction.objects.filter(bank_account=account, creditor__isnull=True).update(creditor=creditor)
    return account
