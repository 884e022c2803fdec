"""Card charges on file, retry policies whatever reported the failure, the attempts timeline,
card expiry watch and direct-debit pre-notification."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from collections_app import services
from collections_app.models import Installment, Payment
from collections_app.retries.models import CollectionAttempt, RetryPolicy
from collections_app.retries.services import (
    card_charges_run,
    cards_expiring_notify,
    retry_date,
    retry_policy_for,
    retries_run,
    run_date,
)
from collections_app.sepa.services import direct_debits_prenotify, sepa_export
from notifications.models import Event
from tests.collections_app.collection_helpers import card_plan, sepa_plan

pytestmark = pytest.mark.django_db

MONDAY = dt.date(2026, 11, 30)


def test_default_policies_follow_the_issue(creditor):
    sepa = retry_policy_for(creditor=creditor, method="sepa_dd")
    card = retry_policy_for(creditor=creditor, method="card")
    assert sepa.pk is None and sepa.retry_codes == ["AM04", "MS03"]
    assert card.retry_codes == ["insufficient_funds", "processing_error"]
    assert sepa.interval_unit == "business_days" and 0 <= sepa.max_retries <= 3


def test_retry_dates_in_business_or_calendar_days(creditor):
    policy = RetryPolicy(creditor=creditor, method="card", interval=2, interval_unit="business_days")
    assert retry_date(policy=policy, failed_on=dt.date(2026, 12, 24)) == dt.date(2026, 12, 29)
    assert retry_date(policy=policy, failed_on=dt.date(2026, 4, 2)) == dt.date(2026, 4, 8)  # Easter
    policy.interval_unit = "calendar_days"
    assert retry_date(policy=policy, failed_on=dt.date(2026, 12, 24)) == dt.date(2026, 12, 26)


def test_a_due_card_instalment_is_charged_once(customer):
    plan = card_plan(customer, first_due=MONDAY)
    result = card_charges_run(today=MONDAY)
    assert (result.submitted, result.succeeded) == (1, 1)
    first = plan.installments.get(sequence=1)
    assert first.status == Installment.Status.PAID
    payment = Payment.objects.get()
    assert payment.gateway_reference.startswith("sbx_") and payment.saved_card_id == plan.saved_card_id
    assert card_charges_run(today=MONDAY).submitted == 0
    assert plan.installments.get(sequence=2).status == "scheduled"  # not due yet


def test_insufficient_funds_retries_after_the_interval_then_suspends(customer):
    RetryPolicy.objects.create(creditor=customer.creditor, method="card", max_retries=1, interval=3,
                               interval_unit="calendar_days", retry_codes=["insufficient_funds"],
                               final_suspend=True, final_alert_team=False)
    plan = card_plan(customer, first_due=MONDAY, number="4000000000009995")
    result = card_charges_run(today=MONDAY)
    assert (result.failed, result.retries_scheduled) == (1, 1)
    retry = CollectionAttempt.objects.get(number=2)
    assert retry.scheduled_for == dt.date(2026, 12, 3)
    failed = Event.objects.get(type="payment.failed")
    assert failed.payload["reason_code"] == "insufficient_funds" and failed.payload["will_retry"] is True
    assert failed.payload["reason_message"] == "Insufficient funds on the card"
    # not before its date
    assert retries_run(today=dt.date(2026, 12, 2)).submitted == 0
    result = retries_run(today=dt.date(2026, 12, 3))
    assert result.submitted == 1 and result.failed == 1
    assert retries_run(today=dt.date(2026, 12, 3)).submitted == 0  # run twice: charged once
    assert Payment.objects.filter(attempt=2).count() == 1
    plan.refresh_from_db()
    assert plan.status == "suspended"
    uncollectable = Event.objects.get(type="installment.uncollectable")
    assert uncollectable.payload["alert_team"] is False and uncollectable.payload["attempts"] == 2
    assert Event.objects.filter(type="payment.failed").order_by("id").last().payload["will_retry"] is False


def test_lost_card_never_retries(customer):
    plan = card_plan(customer, first_due=MONDAY, number="4000000000009987")
    card_charges_run(today=MONDAY)
    assert not CollectionAttempt.objects.filter(number=2).exists()
    plan.refresh_from_db()
    assert plan.status == "suspended"


def test_removed_card_fails_the_attempt_without_calling_the_gateway(customer):
    plan = card_plan(customer, first_due=MONDAY)
    services.saved_card_remove(card=plan.saved_card)
    card_charges_run(today=MONDAY)
    payment = Payment.objects.get()
    assert payment.status == "failed" and payment.reason_code == "card_unavailable" and not payment.gateway_reference


def test_a_worker_that_died_after_its_claim_is_resumed_with_the_same_idempotency_key(customer):
    from collections_app.retries.services import attempts_materialise, attempt_submit

    plan = card_plan(customer, first_due=MONDAY)
    attempts_materialise(method="card", creditor=customer.creditor, up_to=MONDAY)
    attempt = CollectionAttempt.objects.get()
    from django.db import transaction

    with transaction.atomic():
        attempt_submit(attempt=attempt, gateway="sandbox")  # ... and the worker died before the gateway call
    assert card_charges_run(today=MONDAY).submitted == 0  # too recent to be called stuck
    CollectionAttempt.objects.filter(pk=attempt.pk).update(submitted_at=timezone.now() - dt.timedelta(minutes=11))
    assert card_charges_run(today=MONDAY).succeeded == 1
    assert Payment.objects.count() == 1 and plan.installments.get(sequence=1).status == "paid"


def test_the_stale_claim_recovery_reads_the_clock_it_is_given(customer):
    """A recovery pass (the chaos run's settle, an operator's catch-up) moves the clock past
    STALE_CARD_CLAIM without touching the rows; the charge is still made once."""
    from django.db import transaction

    from collections_app.retries.services import STALE_CARD_CLAIM, attempt_submit, attempts_materialise

    plan = card_plan(customer, first_due=MONDAY)
    attempts_materialise(method="card", creditor=customer.creditor, up_to=MONDAY)
    with transaction.atomic():
        attempt_submit(attempt=CollectionAttempt.objects.get(), gateway="sandbox")  # the worker died here
    later = timezone.now() + STALE_CARD_CLAIM + dt.timedelta(seconds=1)
    assert card_charges_run(today=MONDAY, now=later - dt.timedelta(minutes=2)).submitted == 0
    assert card_charges_run(today=MONDAY, now=later).succeeded == 1
    assert card_charges_run(today=MONDAY, now=later + STALE_CARD_CLAIM).submitted == 0  # paid: never again
    assert Payment.objects.get().status == "succeeded" and plan.installments.get(sequence=1).status == "paid"


def test_a_return_in_a_statement_goes_through_the_same_policy(customer):
    """The reconciliation issue books camt.054 returns with payment_reverse: the retry follows."""
    plan = sepa_plan(customer, first_due=MONDAY)
    sepa_export(today=dt.date(2026, 11, 27))
    sepa_export(today=dt.date(2026, 12, 2))  # settled after the collection date
    payment = Payment.objects.get()
    assert payment.status == "succeeded"
    with run_date(dt.date(2026, 12, 2)):  # the statement's import date
        services.payment_reverse(payment=payment, reason_code="AM04", reason_message="Insufficient funds")
    retry = CollectionAttempt.objects.get(number=2)
    assert (retry.status, retry.scheduled_for) == ("scheduled", dt.date(2026, 12, 9))  # + 5 business days
    assert Event.objects.get(type="payment.reversed").payload["will_retry"] is True
    assert plan.installments.get(sequence=1).status == Installment.Status.FAILED
    # a return with MD06 (refund claimed by the debtor) ends it
    other = sepa_plan(services.customer_create(creditor=customer.creditor, external_ref="X2", name="Autre"),
                      first_due=MONDAY)
    sepa_export(today=dt.date(2026, 11, 27))  # Monday 30 has its FRST file already: collected Tuesday 1
    sepa_export(today=dt.date(2026, 12, 3))
    services.payment_reverse(payment=Payment.objects.get(installment__plan=other), reason_code="MD06")
    other.refresh_from_db()
    assert other.status == "suspended"


def test_a_failure_outside_any_collection_attempt_is_left_alone(customer):
    plan = card_plan(customer, first_due=MONDAY)
    first = plan.installments.get(sequence=1)
    payment = services.payment_create(customer=customer, method="card", amount=first.amount, installment=first)
    services.payment_record_failure(payment=payment, reason_code="insufficient_funds")
    assert not CollectionAttempt.objects.exists()
    plan.refresh_from_db()
    assert plan.status == "active"


def test_card_expiring_is_emitted_once_for_cards_of_active_plans(customer):
    card_plan(customer, first_due=MONDAY, exp_year=2026, exp_month=12)
    assert cards_expiring_notify(today=dt.date(2026, 11, 15)) == 0  # 46 days left: outside 30
    assert cards_expiring_notify(today=dt.date(2026, 12, 2)) == 1
    assert cards_expiring_notify(today=dt.date(2026, 12, 3)) == 0
    event = Event.objects.get(type="card.expiring")
    assert event.payload["days_left"] == 29 and event.payload["last4"] == "4242"
    # past its month the card is expired, and its instalment fails without a gateway call
    assert cards_expiring_notify(today=dt.date(2027, 1, 1)) == 0
    assert Event.objects.filter(type="card.expired").count() == 1
    card_charges_run(today=dt.date(2027, 1, 1))
    assert Payment.objects.filter(reason_code="card_unavailable").count() == 1


def test_direct_debit_upcoming_is_emitted_once_before_each_collection(customer):
    plan = sepa_plan(customer, first_due=dt.date(2026, 12, 5))  # a Saturday: collected Monday 7
    assert direct_debits_prenotify(today=dt.date(2026, 11, 28)) == 0  # 7 days ahead: outside 5
    assert direct_debits_prenotify(today=dt.date(2026, 11, 30)) == 1
    assert direct_debits_prenotify(today=dt.date(2026, 12, 1)) == 0
    event = Event.objects.get(type="direct_debit.upcoming")
    assert event.payload["collection_date"] == "2026-12-07"
    assert event.payload["mandate_reference"] == plan.mandate.reference
    assert event.payload["amount"] == "30.00" and event.payload["creditor_identifier"] == "FR72ZZZ123456"


def test_the_team_is_alerted_and_the_debtor_notified_through_the_demo_rules(customer):
    """The final action "alert the team" and the notice before a retry are notification rules on
    installment.uncollectable (alert_team) and payment.retry_scheduled (notify_debtor)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from collections_app.sepa.demo import seed
    from notifications.dispatch import dispatch_pending
    from notifications.models import Delivery

    seed(customer.creditor)
    seed(customer.creditor)  # idempotent
    accountant = get_user_model().objects.create_user("compta", "compta@creditor.example", "pw", is_staff=True)
    accountant.groups.add(Group.objects.get(name="finance"))
    RetryPolicy.objects.filter(creditor=customer.creditor, method="card").update(max_retries=1, interval=1)
    plan = card_plan(customer, first_due=MONDAY, number="4000000000009995")
    card_charges_run(today=MONDAY)
    retries_run(today=dt.date(2026, 12, 1))
    plan.refresh_from_db()
    assert plan.status == "suspended"
    dispatch_pending()
    recipients = {(d.rule.event_type, d.recipient) for d in Delivery.objects.select_related("rule")}
    assert ("payment.retry_scheduled", customer.email) in recipients
    assert ("installment.uncollectable", "compta@creditor.example") in recipients


def test_a_failed_instalment_is_collected_again_after_the_plan_is_resumed(customer):
    from collections_app.errors import InvalidTransition
    from collections_app.retries.services import installment_collect_again

    plan = card_plan(customer, first_due=MONDAY, number="4000000000009987")  # lost card: suspended at once
    card_charges_run(today=MONDAY)
    first = plan.installments.get(sequence=1)
    with pytest.raises(InvalidTransition):
        installment_collect_again(installment=first)
    services.installment_plan_resume(plan=plan)
    attempt = installment_collect_again(installment=first, on=dt.date(2026, 12, 2))
    assert attempt.number == 2 and attempt.scheduled_for == dt.date(2026, 12, 2)
    with pytest.raises(InvalidTransition):
        installment_collect_again(installment=first)  # one at a time
    assert Event.objects.filter(type="payment.retry_scheduled").count() == 1
    assert card_charges_run(today=dt.date(2026, 12, 2)).submitted == 1


class UnreachableGateway:
    """A card gateway whose API does not answer (nothing listens on its port)."""

    name = "sandbox"

    def charge_saved_card(self, **kwargs):
        import httpx

        from tests.servers import free_port

        return httpx.post(f"http://127.0.0.1:{free_port()}/charges", json={}, timeout=2)


def test_a_gateway_outage_leaves_the_charge_to_be_asked_again_never_twice(customer, settings):
    plan = card_plan(customer, first_due=MONDAY)
    card_plan(services.customer_create(creditor=customer.creditor, external_ref="X3", name="Autre"),
              first_due=MONDAY)
    settings.PAYMENT_GATEWAYS = {"sandbox": "tests.collections_app.retries.test_retries.UnreachableGateway"}
    result = card_charges_run(today=MONDAY)
    assert result.submitted == 2 and len(result.errors) == 2  # one outage does not stop the others
    assert set(Payment.objects.values_list("status", flat=True)) == {"pending"}
    settings.PAYMENT_GATEWAYS = {"sandbox": "collections_app.gateways.sandbox.SandboxGateway"}
    assert card_charges_run(today=MONDAY).submitted == 0  # claims too recent to be called stuck
    CollectionAttempt.objects.update(submitted_at=timezone.now() - dt.timedelta(minutes=11))
    assert card_charges_run(today=MONDAY).succeeded == 2
    assert Payment.objects.count() == 2 and plan.installments.get(sequence=1).status == "paid"
