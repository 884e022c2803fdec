"""Reads other parts of the platform need from the pay pages."""
from __future__ import annotations

import datetime as dt

from django.db.models import OuterRef, QuerySet, Subquery

from collections_app.models import Payment, PaymentMethod
from collections_app.paypages.models import PaySubmission


def sepa_single_debits_due(*, on_or_before: dt.date) -> QuerySet[Payment]:
    """One-off SEPA debits signed on a pay page and due for collection: pending payments with
    their mandate, annotated with the `collection_date` announced to the debtor. (Instalments
    by direct debit are Installment rows of the plan, with their own due dates.)"""
    submissions = PaySubmission.objects.filter(payment=OuterRef("pk"), kind=PaySubmission.Kind.SEPA)
    return (Payment.objects.filter(method=PaymentMethod.SEPA_DD, status=Payment.Status.PENDING,
                                   installment__isnull=True, mandate__isnull=False)
            .annotate(collection_date=Subquery(submissions.values("collection_date")[:1]))
            .filter(collection_date__lte=on_or_before)
            .select_related("mandate", "customer")
            .order_by("collection_date", "pk"))
