from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from collections_app import services as core
from collections_app.dunning.services import scenario_create
from collections_app.models import Invoice, PaymentMethod

PARIS = ZoneInfo("Europe/Paris")
DUE = dt.date(2026, 12, 1)  # a Tuesday

TEMPLATES = {
    "fr": {"subject": "Relance {{ payload.invoice_external_ref }}",
           "body_text": "Reste {{ payload.amount_due|money:payload.currency }} · échéance {{ payload.due_date }} · "
                        "{{ payload.pay_url }} · réf {{ payload.short_reference }} · QR {{ payload.qr_url }}"
                        "{% if payload.late_fee_text %} · {{ payload.late_fee_text }}{% endif %}",
           "sms_text": "Facture {{ payload.invoice_external_ref }} : reste {{ payload.amount_due }} "
                       "{{ payload.currency }} {{ payload.pay_url }}",
           "late_fee_text": ""},
    "en": {"subject": "Reminder {{ payload.invoice_external_ref }}",
           "body_text": "Remaining {{ payload.amount_due|money:payload.currency }} {{ payload.pay_url }}",
           "sms_text": "Invoice {{ payload.invoice_external_ref }}: {{ payload.amount_due }} {{ payload.currency }}"},
}


def steps(*specs: tuple[int, str]) -> list[dict]:
    out = []
    for offset, channel in specs:
        templates = {k: dict(v) for k, v in TEMPLATES.items()}
        if offset >= 10:
            templates["fr"]["late_fee_text"] = "Indemnité forfaitaire de 40 € pour {{ payload.invoice_external_ref }}"
        out.append({"offset_days": offset, "channel": channel, "name": f"J{offset:+d}", "templates": templates})
    return out


def make_scenario(creditor, name="Standard", specs=((-3, "email"), (3, "email"), (10, "both")), **fields):
    fields.setdefault("is_default", True)
    fields.setdefault("weekdays", [0, 1, 2, 3, 4, 5, 6])
    fields.setdefault("skip_non_business_days", False)
    fields.setdefault("window_start", dt.time(8, 0))
    fields.setdefault("window_end", dt.time(20, 0))
    return scenario_create(creditor=creditor, name=name, steps=steps(*specs), **fields)


def at(day: dt.date, hour: int = 10, tz: ZoneInfo = PARIS) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, 0), tzinfo=tz)


def day(offset: int) -> dt.date:
    return DUE + dt.timedelta(days=offset)


_counter = {"n": 0}


def invoice_for(customer, amount="100.00", due=DUE, ref=None) -> Invoice:
    _counter["n"] += 1
    return core.invoice_create(creditor=customer.creditor, customer=customer,
                               external_ref=ref or f"F-{_counter['n']:05d}", amount_total=Decimal(amount),
                               issue_date=due - dt.timedelta(days=30), due_date=due)


def pay(invoice: Invoice, amount) -> None:
    """A transfer received on the invoice's pay link (the request the first reminder created)."""
    invoice.refresh_from_db()
    request = invoice.payment_requests.order_by("-pk").first() or core.payment_request_create(
        creditor=invoice.creditor, customer=invoice.customer, invoices=[invoice])
    payment = core.payment_create(customer=invoice.customer, method=PaymentMethod.TRANSFER,
                                  amount=Decimal(str(amount)), payment_request=request)
    core.payment_record_success(payment=payment)


@pytest.fixture
def sms_receiver(receiver, settings):
    settings.SMS_BACKEND = "http"
    settings.SMS_HTTP_URL = receiver.url
    return receiver


@pytest.fixture
def outlets(smtp_sink, sms_receiver):
    """The real outside world: an aiosmtpd sink and a local HTTP SMS provider."""
    return smtp_sink, sms_receiver
