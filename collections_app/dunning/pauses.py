"""Why an invoice's reminders are paused today: a registry of providers.

A provider is `fn(invoice_ids: list[int], today: date) -> dict[int, str]` (invoice id → reason)
and must answer for the whole list in a few queries: the planner calls every provider once per
batch of invoices, never once per invoice. Higher layers register their own from their
AppConfig.ready() (the reconciliation app: "an unreconciled transfer probably covers it"),
which keeps the imports going down.

While an invoice is paused nothing is written for it; when the pause ends the planner sends
the latest step that is due by then and marks the earlier ones skipped.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.db.models import F, Q

PauseProvider = Callable[[list[int], dt.date], dict[int, str]]

_PROVIDERS: dict[str, PauseProvider] = {}


def register_pause_provider(name: str, fn: PauseProvider) -> None:
    """Add (or replace, by name) a pause provider."""
    _PROVIDERS[name] = fn


def unregister_pause_provider(name: str) -> None:
    _PROVIDERS.pop(name, None)


def pause_providers() -> dict[str, PauseProvider]:
    return dict(_PROVIDERS)


def paused_invoices(invoice_ids: list[int], today: dt.date) -> dict[int, str]:
    """Invoice id → reason for every paused invoice of the list (the first provider's reason wins)."""
    found: dict[int, str] = {}
    if not invoice_ids:
        return found
    for name, provider in _PROVIDERS.items():
        remaining = [i for i in invoice_ids if i not in found]
        if not remaining:
            break
        for invoice_id, reason in provider(remaining, today).items():
            found.setdefault(invoice_id, reason or name)
    return found


def paused_requests(request_ids: list[int], today: dt.date) -> dict[int, str]:
    """The same for payment requests without invoices: a dispute or promise to pay on the
    customer, or an active instalment plan on the request."""
    from collections_app.dunning.models import DunningPause
    from collections_app.models import InstallmentPlan, PaymentRequest

    if not request_ids:
        return {}
    pauses = DunningPause.objects.filter(status=DunningPause.Status.ACTIVE, invoice__isnull=True).filter(
        Q(kind=DunningPause.Kind.DISPUTE) | Q(kind=DunningPause.Kind.PROMISE_TO_PAY, until__gte=today))
    found = {pk: kind for pk, kind in PaymentRequest.objects.filter(pk__any_of=request_ids).filter(
        customer__dunning_pauses__in=pauses).values_list("pk", "customer__dunning_pauses__kind")}
    for pk in (PaymentRequest.objects.filter(pk__any_of=request_ids,
                                             instalment_plans__status=InstallmentPlan.Status.ACTIVE)
               .values_list("pk", flat=True)):
        found.setdefault(pk, "instalment_plan")
    return found


# --------------------------------------------------------------------------- built-in providers


def _pause_rows(invoice_ids: list[int], today: dt.date, kind: str) -> dict[int, str]:
    from collections_app.dunning.models import DunningPause
    from collections_app.models import Invoice

    pauses = DunningPause.objects.filter(status=DunningPause.Status.ACTIVE, kind=kind)
    if kind == DunningPause.Kind.PROMISE_TO_PAY:
        pauses = pauses.filter(until__gte=today)
    direct = pauses.filter(invoice_id__any_of=invoice_ids).values_list("invoice_id", flat=True)
    by_customer = Invoice.objects.filter(
        pk__any_of=invoice_ids,
        customer_id__in=pauses.filter(invoice__isnull=True).values("customer_id"),
    ).values_list("pk", flat=True)
    return {i: kind for i in [*direct, *by_customer]}


def dispute_provider(invoice_ids: list[int], today: dt.date) -> dict[int, str]:
    return _pause_rows(invoice_ids, today, "dispute")


def promise_to_pay_provider(invoice_ids: list[int], today: dt.date) -> dict[int, str]:
    return _pause_rows(invoice_ids, today, "promise_to_pay")


def instalment_plan_provider(invoice_ids: list[int], today: dt.date) -> dict[int, str]:
    """The invoice is being paid through an active instalment plan on one of its payment requests."""
    from collections_app.models import InstallmentPlan, Invoice

    ids = (Invoice.objects.filter(pk__any_of=invoice_ids,
                                  payment_requests__instalment_plans__status=InstallmentPlan.Status.ACTIVE)
           .values_list("pk", flat=True).distinct())
    return {i: "instalment_plan" for i in ids}


def credit_balance_provider(invoice_ids: list[int], today: dt.date) -> dict[int, str]:
    """The customer's credit balance (over-payments) covers what remains due: an operator
    should allocate it rather than the customer be reminded."""
    from collections_app.models import Invoice

    ids = (Invoice.objects.filter(pk__any_of=invoice_ids, currency=F("customer__currency"))
           .filter(Q(customer__credit_balance__gt=0)
                   & Q(customer__credit_balance__gte=F("amount_total") - F("amount_paid") - F("amount_written_off")))
           .values_list("pk", flat=True))
    return {i: "credit_balance" for i in ids}


register_pause_provider("dispute", dispute_provider)
register_pause_provider("promise_to_pay", promise_to_pay_provider)
register_pause_provider("instalment_plan", instalment_plan_provider)
register_pause_provider("credit_balance", credit_balance_provider)
