from __future__ import annotations

from decimal import Decimal

from django.db.models import F, Sum

from collections_app.models import Customer, Invoice


def customer_open_balance(*, customer: Customer) -> Decimal:
    """What the customer still owes across open invoices (in the customer's currency)."""
    total = (Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES)
             .aggregate(due=Sum(F("amount_total") - F("amount_paid") - F("amount_written_off")))["due"])
    return total or Decimal("0.00")
