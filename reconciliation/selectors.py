from __future__ import annotations

import datetime as dt

from django.db.models import F
from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

from collections_app.models import Invoice
from reconciliation.models import BankTransaction, Suggestion

COVER_WINDOW_DAYS = 60
COVER_MIN_SCORE = 80


def review_queue():
    return (BankTransaction.objects.filter(status=BankTransaction.Status.UNMATCHED)
            .select_related("bank_account", "statement").order_by("booking_date", "pk"))


def invoices_probably_covered(*, invoice_ids: list[int], today: dt.date) -> dict[int, str]:
    """Open invoices that an incoming transfer waiting in the review queue probably pays (same
    amount and a similar payer name, or already suggested for it): reminders for them wait."""
    since = today - dt.timedelta(days=COVER_WINDOW_DAYS)
    waiting = BankTransaction.objects.filter(status=BankTransaction.Status.UNMATCHED,
                                             direction=BankTransaction.Direction.CREDIT, is_reversal=False,
                                             booking_date__gte=since, booking_date__lte=today)
    # The dunning planner asks for every batch of open invoices: with an empty review queue
    # (the usual case) one cheap query answers.
    if not invoice_ids or not waiting.exists():
        return {}
    invoices = list(Invoice.objects.filter(pk__any_of=list(invoice_ids), status__in=Invoice.OPEN_STATUSES)
                    .annotate(due=F("amount_total") - F("amount_paid") - F("amount_written_off"))
                    .select_related("customer"))
    if not invoices:
        return {}
    covered: dict[int, str] = {}
    for suggestion in (Suggestion.objects.filter(invoice_id__in=[i.pk for i in invoices], transaction__in=waiting)
                       .select_related("transaction")):
        tx = suggestion.transaction
        covered[suggestion.invoice_id] = (f"transfer of {tx.amount} {tx.currency} from {tx.counterparty_name} on "
                                          f"{tx.booking_date} awaits matching (bank transaction #{tx.pk})")
    by_amount: dict[tuple, list[BankTransaction]] = {}
    for tx in waiting.filter(amount__in={i.due for i in invoices}):
        by_amount.setdefault((tx.amount, tx.currency), []).append(tx)
    for invoice in invoices:
        if invoice.pk in covered:
            continue
        names = " ".join(x for x in (invoice.customer.name, invoice.customer.company_name) if x)
        for tx in by_amount.get((invoice.due, invoice.currency), ()):
            if not tx.counterparty_name:
                continue
            score = fuzz.token_set_ratio(default_process(tx.counterparty_name), default_process(names))
            if score >= COVER_MIN_SCORE and (tx.creditor_id in (None, invoice.creditor_id)):
                covered[invoice.pk] = (f"transfer of {tx.amount} {tx.currency} from {tx.counterparty_name} on "
                                       f"{tx.booking_date} awaits matching (bank transaction #{tx.pk})")
                break
    return covered
