"""Recurring payments: a plan that keeps scheduling its next instalment, collected by the same
runs as instalments (FRST then RCUR), never twice, until its end date."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from lxml import etree

from collections_app import services
from collections_app.errors import ValidationFailed
from collections_app.models import InstallmentPlan, Payment
from collections_app.sepa.models import SepaFile
from collections_app.sepa.services import sepa_export
from notifications.models import Event
from tests.collections_app.collection_helpers import DEBTOR_IBANS

pytestmark = pytest.mark.django_db

MONDAY = dt.date(2026, 11, 30)
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"}


@pytest.fixture
def monthly(customer):
    mandate = services.mandate_create(creditor=customer.creditor, customer=customer, holder_name=customer.name,
                                      iban=DEBTOR_IBANS[0])
    return services.recurring_plan_create(customer=customer, method="sepa_dd", amount="29.90", mandate=mandate,
                                          first_due_date=dt.date(2026, 12, 1), ends_on=dt.date(2027, 3, 1),
                                          today=MONDAY)


def test_a_monthly_direct_debit_is_scheduled_ahead_and_collected_frst_then_rcur(monthly):
    # given: created on 30 November, instalments scheduled 45 days ahead
    assert list(monthly.installments.values_list("sequence", "due_date")) == [
        (1, dt.date(2026, 12, 1)), (2, dt.date(2027, 1, 1))]
    assert Event.objects.get(type="instalment_plan.created").payload["installment_count"] == 2
    # when: the collection run of Monday, then the daily extension a month later, twice
    sepa_export(today=MONDAY)
    assert services.recurring_plans_extend(today=dt.date(2026, 12, 31)) == 1
    assert services.recurring_plans_extend(today=dt.date(2026, 12, 31)) == 0
    sepa_export(today=dt.date(2026, 12, 31))
    sepa_export(today=dt.date(2026, 12, 31))
    # then: FRST for the first month, RCUR for the second, each debit once
    files = list(SepaFile.objects.order_by("collection_date").values_list("sequence_type", "control_sum"))
    assert files == [("FRST", Decimal("29.90")), ("RCUR", Decimal("29.90"))]
    rcur = etree.fromstring(SepaFile.objects.get(sequence_type="RCUR").content.encode())
    assert rcur.findtext(".//p:MndtId", namespaces=NS) == monthly.mandate.reference
    assert Payment.objects.filter(installment__plan=monthly).count() == 2
    monthly.refresh_from_db()
    assert monthly.status == InstallmentPlan.Status.ACTIVE
    assert list(monthly.installments.values_list("sequence", flat=True)) == [1, 2, 3]


def test_the_plan_stays_active_between_collections_and_completes_at_its_end(monthly):
    # the extension stops at the end date: December to March, four collections
    services.recurring_plans_extend(today=dt.date(2027, 6, 1))
    assert monthly.installments.count() == 4
    # each run the working day before the due date (lead time: one TARGET2 business day)
    for day in (MONDAY, dt.date(2026, 12, 31), dt.date(2027, 1, 29), dt.date(2027, 2, 26), dt.date(2027, 3, 31)):
        sepa_export(today=day)
        monthly.refresh_from_db()
        if day != dt.date(2027, 3, 31):
            assert monthly.status == InstallmentPlan.Status.ACTIVE
    assert monthly.status == InstallmentPlan.Status.COMPLETED
    assert Payment.objects.filter(installment__plan=monthly, status="succeeded").count() == 4


def test_a_suspended_recurring_payment_is_not_extended(monthly):
    services.installment_plan_suspend(plan=monthly, reason="debtor asked")
    assert services.recurring_plans_extend(today=dt.date(2027, 2, 1)) == 0


def test_recurring_payments_need_a_way_to_collect(customer):
    with pytest.raises(ValidationFailed) as error:
        services.recurring_plan_create(customer=customer, method="sepa_dd", amount="10.00",
                                       first_due_date=dt.date(2026, 12, 1))
    assert error.value.field == "mandate"
    with pytest.raises(ValidationFailed) as error:
        services.recurring_plan_create(customer=customer, method="transfer", amount="10.00",
                                       first_due_date=dt.date(2026, 12, 1))
    assert error.value.field == "method"


def test_an_operator_sets_up_a_recurring_direct_debit_in_the_back_office(admin_client, customer):
    mandate = services.mandate_create(creditor=customer.creditor, customer=customer, holder_name=customer.name,
                                      iban=DEBTOR_IBANS[1])
    first = dt.date.today() + dt.timedelta(days=20)
    data = {"creditor": customer.creditor_id, "customer": customer.pk, "mandate": mandate.pk,
            "method": "sepa_dd", "currency": "EUR", "origin": "operator", "recurrence_months": "1",
            "recurring_amount": "45.00",
            "installments-TOTAL_FORMS": "1", "installments-INITIAL_FORMS": "0",
            "installments-MIN_NUM_FORMS": "0", "installments-MAX_NUM_FORMS": "1000",
            "installments-0-sequence": "1", "installments-0-due_date": first.isoformat(),
            "installments-0-amount": "45.00", "installments-0-currency": "EUR"}
    response = admin_client.post("/admin/collections_app/installmentplan/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    plan = InstallmentPlan.objects.get(customer=customer)
    assert (plan.recurrence_months, plan.recurring_amount, plan.mandate_id) == (1, Decimal("45.00"), mandate.pk)
    assert plan.installments.first().due_date == first
    assert admin_client.get("/admin/collections_app/installmentplan/?recurrence_months__isempty=0").status_code == 200
