"""Every status transition of the core, allowed and refused, and the event each one writes."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from collections_app import services
from collections_app.errors import AmountExceedsBalance, InvalidTransition, ValidationFailed
from collections_app.models import (
    Installment,
    InstallmentPlan,
    Invoice,
    Mandate,
    Payment,
    PaymentRequest,
    Refund,
    SavedCard,
)
from notifications.models import Event
from tests.factories import make_invoice, make_request

pytestmark = pytest.mark.django_db


def last_event(type_: str) -> Event:
    return Event.objects.filter(type=type_).order_by("-id").first()


def pay(request: PaymentRequest, amount: str | Decimal | None = None, method: str = "card") -> Payment:
    payment = services.payment_create(customer=request.customer, method=method,
                                      amount=amount or request.amount_due, payment_request=request)
    return services.payment_record_success(payment=payment)


# --------------------------------------------------------------------------- invoices

def test_invoice_open_to_partially_paid_to_paid(customer):
    request = make_request(customer, amount="100.00")
    invoice = request.invoices.get()
    pay(request, "40.00")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PARTIALLY_PAID and invoice.amount_due == Decimal("60.00")
    assert last_event("invoice.partially_paid").payload["previous_status"] == "open"
    pay(request, "60.00")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and invoice.paid_at is not None
    assert last_event("invoice.paid").payload["amount_due"] == "0.00"


def test_invoice_cancel_allowed_when_open_refused_when_paid(customer):
    invoice = make_invoice(customer)
    services.invoice_cancel(invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.CANCELLED
    assert last_event("invoice.cancelled").payload["invoice_id"] == invoice.pk
    with pytest.raises(InvalidTransition):
        services.invoice_cancel(invoice=invoice)

    request = make_request(customer)
    pay(request)
    with pytest.raises(InvalidTransition):
        services.invoice_cancel(invoice=request.invoices.get())


def test_invoice_with_payments_cannot_be_cancelled_but_can_be_written_off(customer):
    request = make_request(customer, amount="100.00")
    pay(request, "99.50")
    invoice = request.invoices.get()
    with pytest.raises(InvalidTransition):
        services.invoice_cancel(invoice=invoice)
    with pytest.raises(ValidationFailed):
        services.invoice_write_off(invoice=invoice, max_amount=Decimal("0.10"))
    services.invoice_write_off(invoice=invoice, max_amount=Decimal("1.00"))
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.WRITTEN_OFF and invoice.amount_written_off == Decimal("0.50")
    with pytest.raises(InvalidTransition):
        services.invoice_write_off(invoice=invoice)


def test_invoice_update_refused_once_closed_and_below_paid(customer):
    request = make_request(customer, amount="100.00")
    invoice = request.invoices.get()
    pay(request, "30.00")
    with pytest.raises(ValidationFailed):
        services.invoice_update(invoice=invoice, amount_total=Decimal("20.00"))
    services.invoice_update(invoice=invoice, amount_total=Decimal("30.00"))
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID  # lowering the amount settled it
    with pytest.raises(InvalidTransition):
        services.invoice_update(invoice=invoice, due_date=invoice.due_date + dt.timedelta(days=3))


# --------------------------------------------------------------------------- payment requests

def test_request_paid_emits_paid_event_and_refuses_more_money(customer):
    request = make_request(customer, amount="50.00")
    pay(request)
    request.refresh_from_db()
    assert request.status == PaymentRequest.Status.PAID
    assert last_event("payment_request.paid").payload["reference"] == request.reference
    with pytest.raises(InvalidTransition):
        services.payment_create(customer=customer, method="card", amount="1.00", payment_request=request)
    with pytest.raises(InvalidTransition):
        services.payment_request_cancel(payment_request=request)


def test_request_cancel_and_expire(customer):
    request = make_request(customer)
    services.payment_request_cancel(payment_request=request)
    request.refresh_from_db()
    assert request.status == PaymentRequest.Status.CANCELLED
    with pytest.raises(InvalidTransition):
        services.payment_request_cancel(payment_request=request)

    other = make_request(customer)
    with pytest.raises(InvalidTransition):  # not yet expired
        services.payment_request_expire(payment_request=other)
    later = timezone.now() + dt.timedelta(days=400)
    assert services.payment_requests_expire_due(now=later) >= 1
    other.refresh_from_db()
    assert other.status == PaymentRequest.Status.EXPIRED
    assert last_event("payment_request.expired").payload["payment_request_id"] == other.pk


def test_cancel_refused_while_a_payment_is_in_flight(customer):
    request = make_request(customer)
    services.payment_create(customer=customer, method="card", amount="10.00", payment_request=request)
    with pytest.raises(InvalidTransition):
        services.payment_request_cancel(payment_request=request)


def test_payments_in_flight_reserve_the_balance(customer):
    request = make_request(customer, amount="100.00")
    services.payment_create(customer=customer, method="card", amount="70.00", payment_request=request)
    with pytest.raises(AmountExceedsBalance):
        services.payment_create(customer=customer, method="card", amount="40.00", payment_request=request)
    services.payment_create(customer=customer, method="card", amount="30.00", payment_request=request)


# --------------------------------------------------------------------------- payments

def test_payment_pending_processing_succeeded(customer):
    request = make_request(customer)
    payment = services.payment_create(customer=customer, method="sepa_dd", amount="100.00", payment_request=request)
    assert payment.status == Payment.Status.PENDING
    services.payment_mark_processing(payment=payment, end_to_end_id="E2E-1")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PROCESSING
    with pytest.raises(InvalidTransition):
        services.payment_mark_processing(payment=payment)
    services.payment_record_success(payment=payment)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    event = last_event("payment.succeeded")
    assert event.payload["allocations"][0]["amount"] == "100.00"
    with pytest.raises(InvalidTransition):
        services.payment_record_failure(payment=payment, reason_code="AM04")
    with pytest.raises(InvalidTransition):
        services.payment_cancel(payment=payment)


def test_payment_failure_and_cancel(customer):
    request = make_request(customer)
    failed = services.payment_create(customer=customer, method="card", amount="10.00", payment_request=request)
    services.payment_record_failure(payment=failed, reason_code="insufficient_funds", reason_message="No money",
                                    will_retry=True)
    failed.refresh_from_db()
    assert failed.status == Payment.Status.FAILED and failed.reason_code == "insufficient_funds"
    payload = last_event("payment.failed").payload
    assert payload["reason_code"] == "insufficient_funds" and payload["will_retry"] is True
    with pytest.raises(InvalidTransition):
        services.payment_record_success(payment=failed)

    cancelled = services.payment_create(customer=customer, method="card", amount="10.00", payment_request=request)
    services.payment_cancel(payment=cancelled)
    cancelled.refresh_from_db()
    assert cancelled.status == Payment.Status.CANCELLED
    request.refresh_from_db()
    assert request.status == PaymentRequest.Status.OPEN and request.amount_paid == 0


def test_reversal_reopens_invoice_and_request(customer):
    request = make_request(customer, amount="80.00")
    payment = pay(request, method="sepa_dd")
    services.payment_reverse(payment=payment, reason_code="MD06", reason_message="Refund request by debtor")
    payment.refresh_from_db()
    request.refresh_from_db()
    invoice = request.invoices.get()
    assert payment.status == Payment.Status.REVERSED and payment.reason_code == "MD06"
    assert request.status == PaymentRequest.Status.OPEN and request.amount_paid == 0
    assert invoice.status == Invoice.Status.OPEN and invoice.amount_paid == 0
    assert last_event("invoice.reopened").payload["previous_status"] == "paid"
    assert last_event("payment_request.reopened")
    with pytest.raises(InvalidTransition):
        services.payment_reverse(payment=payment, reason_code="MD06")


def test_a_pay_link_follows_its_invoices_paid_by_another_payment(customer):
    # given: a pay link for two invoices
    first, second = make_invoice(customer, amount="30.00"), make_invoice(customer, amount="20.00")
    request = services.payment_request_create(creditor=customer.creditor, customer=customer, invoices=[first, second])
    # when: a transfer matched to the invoices (no pay link) pays one of them, then the other
    one = services.payment_create(customer=customer, method="transfer", amount="30.00")
    services.payment_record_success(payment=one, allocations=[services.AllocationLine(invoice=first,
                                                                                      amount=Decimal("30.00"))])
    request.refresh_from_db()
    assert request.status == PaymentRequest.Status.OPEN  # the second invoice is still due
    other = services.payment_create(customer=customer, method="transfer", amount="20.00")
    services.payment_record_success(payment=other, allocations=[services.AllocationLine(invoice=second,
                                                                                        amount=Decimal("20.00"))])
    # then: the link cannot collect them a second time
    request.refresh_from_db()
    assert request.status == PaymentRequest.Status.PAID
    assert last_event("payment_request.paid").payload["reference"] == request.reference
    # and when that transfer comes back, the link is open again
    services.payment_reverse(payment=other, reason_code="AC04")
    request.refresh_from_db()
    assert request.status == PaymentRequest.Status.OPEN
    assert last_event("payment_request.reopened")


def test_over_payment_goes_to_credit_balance(customer):
    invoice = make_invoice(customer, amount="40.00")
    payment = services.payment_create(customer=customer, method="transfer", amount="50.00")
    services.payment_record_success(payment=payment)
    invoice.refresh_from_db()
    customer.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert customer.credit_balance == Decimal("10.00")
    assert last_event("customer.credit_balance_changed").payload["delta"] == "10.00"


# --------------------------------------------------------------------------- refunds

def test_refund_lifecycle(customer):
    payment = pay(make_request(customer, amount="60.00"))
    with pytest.raises(AmountExceedsBalance):
        services.refund_create(payment=payment, amount=Decimal("60.01"))
    refund = services.refund_create(payment=payment, amount=Decimal("20.00"), reason="geste commercial")
    assert refund.status == Refund.Status.PENDING
    assert last_event("refund.initiated").payload["amount"] == "20.00"
    services.refund_record_success(refund=refund, gateway_reference="sbr_1")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    with pytest.raises(InvalidTransition):
        services.refund_record_failure(refund=refund, reason="late")
    with pytest.raises(AmountExceedsBalance):
        services.refund_create(payment=payment, amount=Decimal("40.01"))
    failing = services.refund_create(payment=payment, amount=Decimal("40.00"))
    services.refund_record_failure(refund=failing, reason="account closed")
    assert services.payment_refundable_amount(payment) == Decimal("40.00")


def test_refund_refused_for_unsucceeded_payment(customer):
    request = make_request(customer)
    payment = services.payment_create(customer=customer, method="card", amount="10.00", payment_request=request)
    with pytest.raises(InvalidTransition):
        services.refund_create(payment=payment)


# --------------------------------------------------------------------------- mandates and cards

def test_mandate_lifecycle_and_iban_validation(customer):
    with pytest.raises(ValidationFailed) as bad:
        services.mandate_create(creditor=customer.creditor, customer=customer, holder_name="X",
                                iban="FR76 3000 6000 0112 3456 7890 188")
    assert bad.value.field == "iban"
    mandate = services.mandate_create(creditor=customer.creditor, customer=customer, holder_name="Marie Curie",
                                      iban="FR14 2004 1010 0505 0001 3M02 606", signature_ip="10.0.0.1")
    assert mandate.iban == "FR1420041010050500013M02606" and mandate.bic  # BIC derived from the IBAN
    assert mandate.status == Mandate.Status.ACTIVE
    services.mandate_cancel(mandate=mandate, cancelled_by="debtor")
    mandate.refresh_from_db()
    assert mandate.status == Mandate.Status.CANCELLED
    assert last_event("mandate.cancelled").payload["cancelled_by"] == "debtor"
    with pytest.raises(InvalidTransition):
        services.mandate_expire(mandate=mandate)


def test_saved_card_remove(customer):
    card = services.saved_card_create(customer=customer, gateway="sandbox", gateway_token="tok_x", brand="visa",
                                      last4="4242", exp_month=12, exp_year=2030)
    services.saved_card_remove(card=card)
    card.refresh_from_db()
    assert card.status == SavedCard.Status.REMOVED
    with pytest.raises(InvalidTransition):
        services.saved_card_remove(card=card)


# --------------------------------------------------------------------------- instalment plans

def test_plan_completes_when_every_installment_is_paid(customer):
    request = make_request(customer, amount="100.00")
    schedule = services.instalment_schedule_build(total=request.amount_due, count=3,
                                                  first_due_date=timezone.localdate())
    assert [a for _, a in schedule] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    plan = services.installment_plan_create(customer=customer, method="card", schedule=schedule,
                                            payment_request=request)
    for installment in plan.installments.order_by("sequence"):
        payment = services.payment_create(customer=customer, method="card", amount=installment.amount,
                                          payment_request=request, installment=installment)
        services.payment_record_success(payment=payment)
    plan.refresh_from_db()
    request.refresh_from_db()
    assert plan.status == InstallmentPlan.Status.COMPLETED
    assert request.status == PaymentRequest.Status.PAID
    assert set(plan.installments.values_list("status", flat=True)) == {Installment.Status.PAID}
    with pytest.raises(InvalidTransition):
        services.installment_plan_cancel(plan=plan)


def test_plan_suspend_resume_cancel(customer):
    request = make_request(customer, amount="90.00")
    plan = services.installment_plan_create(
        customer=customer, method="card", payment_request=request,
        schedule=services.instalment_schedule_build(total=Decimal("90.00"), count=2,
                                                    first_due_date=timezone.localdate()))
    with pytest.raises(InvalidTransition):
        services.installment_plan_resume(plan=plan)
    services.installment_plan_suspend(plan=plan, reason="3 failed attempts")
    assert last_event("instalment_plan.suspended").payload["reason"] == "3 failed attempts"
    services.installment_plan_resume(plan=plan)
    services.installment_plan_cancel(plan=plan)
    plan.refresh_from_db()
    assert plan.status == InstallmentPlan.Status.CANCELLED
    assert set(plan.installments.values_list("status", flat=True)) == {Installment.Status.CANCELLED}


def test_plan_must_add_up_and_have_2_to_12_instalments(customer):
    request = make_request(customer, amount="100.00")
    today = timezone.localdate()
    with pytest.raises(ValidationFailed):
        services.installment_plan_create(customer=customer, method="card", payment_request=request,
                                         schedule=[(today, Decimal("50")), (today + dt.timedelta(days=30),
                                                                            Decimal("40"))])
    with pytest.raises(ValidationFailed):
        services.installment_plan_create(customer=customer, method="card", payment_request=request,
                                         schedule=[(today, Decimal("100"))])
    with pytest.raises(ValidationFailed):
        services.installment_plan_create(customer=customer, method="card", payment_request=request,
                                         schedule=[(today, Decimal("50")), (today, Decimal("50"))])


def test_saved_card_expires_only_after_its_expiry_month(customer):
    card = services.saved_card_create(customer=customer, gateway="sandbox", gateway_token="tok_exp", brand="visa",
                                      last4="0069", exp_month=3, exp_year=2026)
    with pytest.raises(InvalidTransition):
        services.saved_card_expire(card=card, today=dt.date(2026, 3, 31))
    services.saved_card_expire(card=card, today=dt.date(2026, 4, 1))
    card.refresh_from_db()
    assert card.status == SavedCard.Status.EXPIRED
    assert last_event("card.expired").payload["last4"] == "0069"
    with pytest.raises(InvalidTransition):
        services.saved_card_expire(card=card, today=dt.date(2027, 1, 1))


def test_failed_installment_payment_marks_the_installment_failed_then_paid_on_retry(customer):
    request = make_request(customer, amount="60.00")
    plan = services.installment_plan_create(
        customer=customer, method="card", payment_request=request,
        schedule=services.instalment_schedule_build(total=Decimal("60.00"), count=2,
                                                    first_due_date=timezone.localdate()))
    first = plan.installments.get(sequence=1)
    attempt = services.payment_create(customer=customer, method="card", amount=first.amount,
                                      payment_request=request, installment=first)
    services.payment_record_failure(payment=attempt, reason_code="insufficient_funds", will_retry=True)
    first.refresh_from_db()
    assert first.status == Installment.Status.FAILED
    assert last_event("installment.failed").payload["reason_code"] == "insufficient_funds"
    retry = services.payment_create(customer=customer, method="card", amount=first.amount, payment_request=request,
                                    installment=first, retry_of=attempt, attempt=2)
    services.payment_record_success(payment=retry)
    first.refresh_from_db()
    assert first.status == Installment.Status.PAID
    assert last_event("installment.paid").payload["payment_id"] == retry.pk
