"""Reminder scenarios over simulated days, against a real SMTP sink (aiosmtpd) and a real local
HTTP SMS provider. Time travel: every run is given its business date and instant."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from collections_app.dunning.models import DunningPause, Reminder
from collections_app.dunning.selectors import dunning_plan
from collections_app.dunning.services import (
    dunning_run,
    pause_create,
    pause_end,
    reminders_claim,
    reminders_send_claimed,
)
from notifications.models import Event
from tests.collections_app.dunning.conftest import at, day, invoice_for, make_scenario, pay
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def run(offset: int, hour: int = 10, tz=None) -> dict:
    kwargs = {"tz": tz} if tz else {}
    return dunning_run(today=day(offset), now=at(day(offset), hour, **kwargs))


def subjects(sink) -> list[str]:
    return [message["Subject"] for _rcpt, message in sink.messages]


def body(sink, index: int = -1) -> str:
    return sink.messages[index][1].get_content()


def test_three_steps_over_simulated_days_email_and_sms(creditor, outlets):
    # given a 3-step scenario: J-3 email, J+3 email, J+10 email and SMS
    sink, sms = outlets
    make_scenario(creditor)
    customer = CustomerFactory(creditor=creditor, phone="+33611111111")
    invoice = invoice_for(customer, amount="250.00")
    # when the job runs every day from J-5 to J+12
    for offset in range(-5, 13):
        run(offset)
    # then each step went out once, on its day, and nothing else
    assert subjects(sink) == [f"Relance {invoice.external_ref}"] * 3
    assert [r.json()["to"] for r in sms.requests] == ["+33611111111"]
    assert "250.00 EUR" in sms.requests[0].json()["text"]
    reminders = list(Reminder.objects.filter(invoice=invoice).order_by("step_date"))
    assert [(r.step.offset_days, r.status, r.run_date) for r in reminders] == [
        (-3, "sent", day(-3)), (3, "sent", day(3)), (10, "sent", day(10))]
    assert reminders[2].channels_done == ["email", "sms"]
    # the email carries the pay link, short reference, QR link, amount, due date and the late fee text
    request = invoice.payment_requests.get()
    text = body(sink)
    assert f"/pay/{request.token}/" in text and request.short_reference in text
    assert f"/pay/{request.token}/qr.png" in text and "250,00\u00a0€" in text and "2026-12-01" in text
    assert f"Indemnité forfaitaire de 40 € pour {invoice.external_ref}" in text
    assert Event.objects.filter(type="reminder.sent").count() == 3


def test_paid_after_step_one_gets_no_step_two(creditor, outlets):
    sink, sms = outlets
    make_scenario(creditor)
    invoice = invoice_for(CustomerFactory(creditor=creditor))
    for offset in range(-3, 1):
        run(offset)
    assert len(sink.messages) == 1
    # when the customer pays in full, and the job keeps running
    pay(invoice, "100.00")
    for offset in range(1, 25):
        run(offset)
    # then no further reminder, and no escalation
    assert len(sink.messages) == 1 and sms.requests == []
    assert list(Reminder.objects.filter(invoice=invoice).values_list("status", flat=True)) == ["sent"]
    assert not Event.objects.filter(type="dunning.escalated").exists()


def test_a_payment_between_planning_and_sending_skips_the_reminder(creditor, outlets):
    """The plan and the claim were made before the money arrived: the send re-reads the invoice."""
    sink, _sms = outlets
    make_scenario(creditor)
    invoice = invoice_for(CustomerFactory(creditor=creditor))
    run(-3)
    # given step 2 planned and claimed
    import uuid

    items = [i for batch in dunning_plan(today=day(3), now=at(day(3))) for i in batch]
    assert [i.action for i in items] == ["send"]
    reminders_claim(items=items, today=day(3), token=uuid.uuid4())
    # when the payment lands before the send
    pay(invoice, "100.00")
    counts = reminders_send_claimed(now=at(day(3)), today=day(3))
    # then
    assert counts == {"skipped_paid": 1}
    assert len(sink.messages) == 1
    skipped = Reminder.objects.get(invoice=invoice, step__offset_days=3)
    assert (skipped.status, skipped.skip_reason) == ("skipped", "paid")
    event = Event.objects.get(type="reminder.skipped")
    assert event.payload["reason"] == "paid" and event.payload["invoice_id"] == invoice.pk


def test_partial_payment_re_anchors_the_amount_of_step_two(creditor, outlets):
    sink, _sms = outlets
    make_scenario(creditor)
    invoice = invoice_for(CustomerFactory(creditor=creditor), amount="300.00")
    run(-3)
    assert "300,00\u00a0€" in body(sink)
    pay(invoice, "120.00")
    run(3)
    assert len(sink.messages) == 2
    assert "180,00\u00a0€" in body(sink) and "300,00" not in body(sink)
    assert Reminder.objects.get(invoice=invoice, step__offset_days=3).amount_due == Decimal("180.00")


def test_a_dispute_pauses_then_resume_continues_from_the_right_step(creditor, outlets):
    sink, sms = outlets
    make_scenario(creditor)
    customer = CustomerFactory(creditor=creditor)
    invoice = invoice_for(customer)
    other = invoice_for(customer)
    run(-3)
    assert len(sink.messages) == 2
    # when the customer disputes one invoice from J-1 to J+12
    pause = pause_create(customer=customer, invoice=invoice, kind=DunningPause.Kind.DISPUTE, note="wrong quantity")
    for offset in range(-2, 12):
        result = run(offset)
        if offset in (3, 10):
            assert result["counts"]["planned_paused"] == 1
    # then the disputed invoice got nothing, the other one its steps
    sent = Reminder.objects.filter(status="sent")
    assert sent.filter(invoice=invoice).count() == 1 and sent.filter(invoice=other).count() == 3
    # when the dispute ends: only the latest due step (J+10) goes out; J+3 is marked missed
    pause_end(pause=pause)
    before = len(sink.messages)
    run(12)
    run(13)
    assert len(sink.messages) == before + 1 and len(sms.requests) == 2
    rows = {r.step.offset_days: (r.status, r.skip_reason) for r in Reminder.objects.filter(invoice=invoice)}
    assert rows == {-3: ("sent", ""), 3: ("skipped", "superseded"), 10: ("sent", "")}
    assert Event.objects.filter(type="reminder.skipped", payload__reason="superseded").count() == 1
    assert Event.objects.filter(type__in=["dunning.paused", "dunning.resumed"]).count() == 2


def test_a_promise_to_pay_pauses_until_the_promised_date(creditor, outlets):
    sink, _ = outlets
    make_scenario(creditor)
    customer = CustomerFactory(creditor=creditor)
    invoice_for(customer)
    pause_create(customer=customer, kind=DunningPause.Kind.PROMISE_TO_PAY, until=day(5))
    for offset in range(-3, 6):
        run(offset)
    assert sink.messages == []
    run(6)
    assert len(sink.messages) == 1
    assert Reminder.objects.get(status="sent").step.offset_days == 3
    assert Reminder.objects.get(step__offset_days=-3).skip_reason == "superseded"


def test_after_downtime_only_the_latest_due_step_is_sent(creditor, outlets):
    sink, sms = outlets
    make_scenario(creditor)
    invoice = invoice_for(CustomerFactory(creditor=creditor))
    # nothing ran for two weeks
    run(11)
    run(11)
    assert len(sink.messages) == 1 and len(sms.requests) == 1
    rows = {r.step.offset_days: r.status for r in Reminder.objects.filter(invoice=invoice)}
    assert rows == {-3: "skipped", 3: "skipped", 10: "sent"}


def test_send_window_in_the_customer_time_zone(creditor, outlets):
    """The window is 08:00-20:00 on weekdays in the customer's own time zone."""
    sink, _ = outlets
    make_scenario(creditor, weekdays=[0, 1, 2, 3, 4])
    tokyo = CustomerFactory(creditor=creditor, time_zone="Asia/Tokyo", locale="en")
    paris = CustomerFactory(creditor=creditor)
    invoice_for(tokyo, ref="TOKYO-1", due=dt.date(2026, 12, 4))  # J-3 is Tuesday 1 December
    invoice_for(paris, ref="PARIS-1", due=dt.date(2026, 12, 4))
    today = dt.date(2026, 12, 1)
    # 09:00 in Paris is 17:00 in Tokyo: both inside
    # 13:00 in Paris is 21:00 in Tokyo: only Paris would be inside
    result = dunning_run(today=today, now=at(today, 13))
    assert result["counts"]["planned_outside_window"] == 1
    assert subjects(sink) == ["Relance PARIS-1"]
    # 01:00 in Paris is 09:00 in Tokyo: Tokyo now
    result = dunning_run(today=today, now=at(today, 1) + dt.timedelta(days=1))
    assert subjects(sink) == ["Relance PARIS-1", "Reminder TOKYO-1"]
    assert Reminder.objects.get(invoice__external_ref="TOKYO-1").locale == "en"
    # a Saturday morning in Tokyo (Friday evening in Paris) is outside the weekdays
    invoice_for(tokyo, ref="TOKYO-2", due=dt.date(2026, 12, 8))
    friday_paris_evening = dt.datetime(2026, 12, 5, 1, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert dunning_run(today=dt.date(2026, 12, 5), now=friday_paris_evening)["counts"][
        "planned_outside_window"] == 1


def test_non_business_days_are_skipped_when_set(creditor, outlets):
    sink, _ = outlets
    make_scenario(creditor, skip_non_business_days=True, specs=((0, "email"),))
    invoice_for(CustomerFactory(creditor=creditor), due=dt.date(2026, 12, 25))
    christmas = dt.date(2026, 12, 25)
    assert dunning_run(today=christmas, now=at(christmas))["counts"] == {"planned_outside_window": 1}
    monday = dt.date(2026, 12, 28)
    dunning_run(today=monday, now=at(monday))
    assert len(sink.messages) == 1


def test_escalation_after_the_last_step_happens_once(creditor, outlets):
    _sink, _ = outlets
    make_scenario(creditor, escalation="alert_team", escalation_after_days=5)
    invoice = invoice_for(CustomerFactory(creditor=creditor))
    for offset in range(-3, 20):
        run(offset)
    event = Event.objects.get(type="dunning.escalated")
    assert event.payload["action"] == "alert_team" and event.payload["invoice_id"] == invoice.pk
    assert invoice.dunning_escalations.get().run_date == day(15)


def test_no_contact_and_exclusion(creditor, outlets):
    from collections_app.dunning.models import DunningOverride

    sink, _ = outlets
    make_scenario(creditor, specs=((3, "sms"),))
    no_phone = CustomerFactory(creditor=creditor, phone="")
    excluded = CustomerFactory(creditor=creditor)
    invoice_for(no_phone)
    invoice_for(excluded)
    DunningOverride.objects.create(customer=excluded, excluded=True)
    run(3)
    assert list(Reminder.objects.values_list("invoice__customer", "status", "skip_reason")) == [
        (no_phone.pk, "skipped", "no_contact")]
    assert sink.messages == []


def test_a_payment_request_on_its_own_is_reminded_once_per_step_until_paid(creditor, outlets):
    """A debt without any invoice: its request is created on day 0 and is reminded from that day."""
    from collections_app import services as core

    sink, _ = outlets
    make_scenario(creditor, specs=((2, "email"), (6, "email"), (9, "email")))
    customer = CustomerFactory(creditor=creditor)
    request = core.payment_request_create(creditor=creditor, customer=customer, amount=Decimal("75.00"),
                                          reference="DEBT-1")
    created = timezone.localdate(request.created_at)
    for offset in range(0, 8):
        today = created + dt.timedelta(days=offset)
        dunning_run(today=today, now=at(today))
    assert subjects(sink) == ["Relance DEBT-1", "Relance DEBT-1"]
    assert f"/pay/{request.token}/" in body(sink) and "75,00\u00a0€" in body(sink)
    rows = list(Reminder.objects.filter(payment_request=request).order_by("step_date"))
    assert [(r.step.offset_days, r.status) for r in rows] == [(2, "sent"), (6, "sent")]
    assert Event.objects.filter(type="reminder.sent", payload__payment_request_id=request.pk).count() == 2
    # partly paid: the next step shows what remains; once settled, nothing more
    payment = core.payment_create(customer=customer, method="transfer", amount=Decimal("25.00"),
                                  payment_request=request)
    core.payment_record_success(payment=payment)
    today = created + dt.timedelta(days=9)
    dunning_run(today=today, now=at(today))
    assert "50,00\u00a0€" in body(sink)
    payment = core.payment_create(customer=customer, method="transfer", amount=Decimal("50.00"),
                                  payment_request=request)
    core.payment_record_success(payment=payment)
    for offset in range(10, 30):
        today = created + dt.timedelta(days=offset)
        dunning_run(today=today, now=at(today))
    assert len(sink.messages) == 3
    assert not Event.objects.filter(type="dunning.escalated").exists()


def test_a_request_paused_by_a_customer_dispute(creditor, outlets):
    from collections_app import services as core

    sink, _ = outlets
    make_scenario(creditor, specs=((1, "email"),))
    customer = CustomerFactory(creditor=creditor)
    request = core.payment_request_create(creditor=creditor, customer=customer, amount=Decimal("10.00"))
    pause = pause_create(customer=customer, kind=DunningPause.Kind.DISPUTE)
    today = timezone.localdate(request.created_at) + dt.timedelta(days=2)
    assert dunning_run(today=today, now=at(today))["counts"] == {"planned_paused": 1}
    pause_end(pause=pause)
    dunning_run(today=today, now=at(today))
    assert len(sink.messages) == 1
