"""pain.002 status reports: rejects fail their payments with the reason code, the retry policy
decides (business days skipping weekends and TARGET2 holidays), and bad reports apply nothing."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given, settings, strategies as st

from collections_app.models import Installment, InstallmentPlan, Payment, PaymentRequest
from collections_app.retries.models import CollectionAttempt, RetryPolicy
from collections_app.sepa import pain002
from collections_app.sepa.models import CollectionSettings, SepaFile, StatusReport
from collections_app.sepa.services import sepa_export, status_report_import
from notifications.models import Event
from tests.collections_app.collection_helpers import DEBTOR_IBANS, pain002 as make_pain002, sepa_plan
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

FRIDAY = dt.date(2026, 12, 18)
TUESDAY = dt.date(2026, 12, 22)


def e2e_of(plan: InstallmentPlan, sequence: int = 1, attempt: int = 1) -> str:
    return CollectionAttempt.objects.get(installment__plan=plan, installment__sequence=sequence,
                                         number=attempt).payment.end_to_end_id


@pytest.fixture
def five_plans(creditor):
    CollectionSettings.objects.create(creditor=creditor, lead_days=3)
    RetryPolicy.objects.create(creditor=creditor, method="sepa_dd", max_retries=2, interval=3,
                               interval_unit="business_days", retry_codes=["AM04", "MS03"],
                               final_suspend=True, final_alert_team=True, final_send_pay_link=True)
    customers = CustomerFactory.create_batch(5, creditor=creditor)
    plans = [sepa_plan(c, first_due=dt.date(2026, 12, 23), iban=DEBTOR_IBANS[i]) for i, c in enumerate(customers)]
    sepa_export(today=FRIDAY)  # Friday 18 + 3 business days -> collected Wednesday 23 December
    return plans


def test_rejects_with_different_codes_retry_or_end_the_plan(five_plans):
    a_am04, b_ms03, c_md01, d_ac04, e_ok = five_plans
    sepa_file = SepaFile.objects.get()
    assert sepa_file.collection_date == dt.date(2026, 12, 23)
    report = make_pain002(message_id="BANK-RPT-1", original_message_id=sepa_file.message_id,
                          rejected=[(e2e_of(a_am04), "AM04"), (e2e_of(b_ms03), "MS03"),
                                    (e2e_of(c_md01), "MD01"), (e2e_of(d_ac04), "AC04")],
                          accepted=[e2e_of(e_ok)])
    # when: imported on Tuesday 22 December
    result = status_report_import(content=report, filename="rpt1.xml", today=TUESDAY)
    # then
    assert result.ok and result.accepted == 1
    assert {r["reason_code"]: r["will_retry"] for r in result.rejected} == {
        "AM04": True, "MS03": True, "MD01": False, "AC04": False}
    assert {r["reason_code"]: r["reason"] for r in result.rejected}["MD01"] == "No mandate"
    # retried 3 TARGET2 business days later: Wed 23 (1), Thu 24 (2), [Fri 25 and Sat 26 holidays,
    # Sun 27] Mon 28 (3)
    for plan in (a_am04, b_ms03):
        retry = CollectionAttempt.objects.get(installment__plan=plan, number=2)
        assert (retry.status, retry.scheduled_for) == ("scheduled", dt.date(2026, 12, 28))
        plan.refresh_from_db()
        assert plan.status == "active"
    scheduled = Event.objects.filter(type="payment.retry_scheduled").order_by("id")
    assert [e.payload["retry_date"] for e in scheduled] == ["2026-12-28", "2026-12-28"]
    assert all(e.payload["notify_debtor"] and e.payload["retry_attempt"] == 2 for e in scheduled)
    # MD01 and AC04 never retry: the plans are suspended, the team alerted, a pay link sent
    for plan, code in ((c_md01, "MD01"), (d_ac04, "AC04")):
        plan.refresh_from_db()
        assert plan.status == "suspended"
        assert not CollectionAttempt.objects.filter(installment__plan=plan, number=2).exists()
        uncollectable = Event.objects.get(type="installment.uncollectable",
                                          payload__instalment_plan_id=plan.pk)
        assert uncollectable.payload["reason_code"] == code and uncollectable.payload["alert_team"] is True
        link = PaymentRequest.objects.get(pk=uncollectable.payload["pay_link_payment_request_id"])
        assert link.amount == plan.installments.get(sequence=1).amount
        assert uncollectable.payload["pay_url"] == link.pay_url
    failed = {e.payload["reason_code"]: e.payload["will_retry"] for e in Event.objects.filter(type="payment.failed")}
    assert failed == {"AM04": True, "MS03": True, "MD01": False, "AC04": False}
    assert Event.objects.filter(type="instalment_plan.suspended").count() == 2
    # the accepted one is still in flight; it settles once a business day has passed after its
    # collection date (Wed 23): not on Thu 24, on Mon 28
    e_ok.refresh_from_db()
    assert e_ok.installments.get(sequence=1).status == Installment.Status.PROCESSING
    sepa_export(today=dt.date(2026, 12, 24))
    assert e_ok.installments.get(sequence=1).status == Installment.Status.PROCESSING
    sepa_export(today=dt.date(2026, 12, 28))
    assert e_ok.installments.get(sequence=1).status == Installment.Status.PAID


def test_a_reject_arriving_after_settlement_reverses_the_payment(five_plans):
    plan = five_plans[0]
    sepa_file = SepaFile.objects.get()
    sepa_export(today=dt.date(2026, 12, 28))
    payment = CollectionAttempt.objects.get(installment__plan=plan, number=1).payment
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    result = status_report_import(content=make_pain002(message_id="LATE-1", original_message_id=sepa_file.message_id,
                                                       rejected=[(payment.end_to_end_id, "AM04")]),
                                  today=dt.date(2026, 12, 28))
    assert result.ok and result.rejected[0]["will_retry"] is True
    payment.refresh_from_db()
    assert payment.status == "reversed"
    assert plan.installments.get(sequence=1).status == Installment.Status.FAILED
    assert CollectionAttempt.objects.get(installment__plan=plan, number=2).scheduled_for == dt.date(2026, 12, 31)


def test_retries_are_collected_then_exhausted(five_plans):
    a_am04 = five_plans[0]
    first_file = SepaFile.objects.get()
    status_report_import(content=make_pain002(message_id="R1", original_message_id=first_file.message_id,
                                              rejected=[(e2e_of(a_am04), "AM04")]), today=TUESDAY)
    # the retry is due on Monday 28: Tuesday 22 + 3 business days reaches it
    result = sepa_export(today=TUESDAY)
    assert [(f["collection_date"], f["sequence_type"]) for f in result.files] == [(dt.date(2026, 12, 28), "FRST")]
    retry_file = SepaFile.objects.get(collection_date=dt.date(2026, 12, 28))
    second = CollectionAttempt.objects.get(installment__plan=a_am04, number=2)
    assert second.payment.retry_of_id == CollectionAttempt.objects.get(installment__plan=a_am04, number=1).payment_id
    assert second.payment.attempt == 2
    # rejected again: a third attempt; rejected a third time: no attempts left, the plan is suspended
    status_report_import(content=make_pain002(message_id="R2", original_message_id=retry_file.message_id,
                                              rejected=[(e2e_of(a_am04, attempt=2), "AM04")]),
                         today=dt.date(2026, 12, 24))
    third = CollectionAttempt.objects.get(installment__plan=a_am04, number=3)
    assert third.scheduled_for == dt.date(2026, 12, 30)  # Thu 24 + 3: [25, 26, 27 closed] Mon 28, Tue 29, Wed 30
    sepa_export(today=dt.date(2026, 12, 28))
    third.refresh_from_db()
    status_report_import(content=make_pain002(message_id="R3", original_message_id=third.sepa_file.message_id,
                                              rejected=[(third.payment.end_to_end_id, "AM04")]),
                         today=dt.date(2026, 12, 29))
    a_am04.refresh_from_db()
    assert a_am04.status == "suspended"
    assert not CollectionAttempt.objects.filter(installment__plan=a_am04, number=4).exists()
    timeline = list(CollectionAttempt.objects.filter(installment__plan=a_am04, installment__sequence=1)
                    .order_by("number").values_list("number", "status", "reason_code"))
    assert timeline == [(1, "failed", "AM04"), (2, "failed", "AM04"), (3, "failed", "AM04")]
    assert Event.objects.get(type="installment.uncollectable").payload["attempts"] == 3


def test_unknown_transactions_are_reported_and_nothing_is_applied(five_plans):
    a, b = five_plans[:2]
    sepa_file = SepaFile.objects.get()
    report = make_pain002(message_id="BAD-1", original_message_id=sepa_file.message_id,
                          rejected=[(e2e_of(a), "AM04"), ("NOT-OURS-123", "AC01"), (e2e_of(b), "MD01")])
    events_before = Event.objects.count()
    result = status_report_import(content=report, filename="bad.xml", today=TUESDAY)
    assert not result.ok
    assert result.errors == ["Transaction 2: unknown end-to-end id NOT-OURS-123."]
    assert Payment.objects.filter(status="processing").count() == 5
    assert not StatusReport.objects.exists() and Event.objects.count() == events_before
    assert not CollectionAttempt.objects.filter(status="failed").exists()


def test_command_exits_non_zero_on_a_bad_report_and_succeeds_once_on_a_good_one(five_plans, tmp_path):
    sepa_file = SepaFile.objects.get()
    bad = tmp_path / "bad.xml"
    bad.write_bytes(make_pain002(message_id="BAD-2", original_message_id=sepa_file.message_id,
                                 rejected=[("UNKNOWN", "AM04")]))
    with pytest.raises(CommandError, match="unknown end-to-end id UNKNOWN"):
        call_command("import_status_report", str(bad), "--json")
    good = tmp_path / "good.xml"
    good.write_bytes(make_pain002(message_id="OK-1", original_message_id=sepa_file.message_id,
                                  rejected=[(e2e_of(five_plans[0]), "AM04")]))
    call_command("import_status_report", str(good), "--date", "2026-12-22")
    # importing the same report again changes nothing
    again = status_report_import(content=good.read_bytes(), today=TUESDAY)
    assert again.already_imported and CollectionAttempt.objects.filter(status="failed").count() == 1


def test_a_report_on_another_file_is_refused(five_plans):
    report = make_pain002(message_id="X-1", original_message_id="SOME-OTHER-MSG",
                          rejected=[(e2e_of(five_plans[0]), "AM04")])
    result = status_report_import(content=report, today=TUESDAY)
    assert not result.ok and "was not sent in message SOME-OTHER-MSG" in result.errors[0]


def test_a_whole_file_rejection_fails_every_transaction(five_plans):
    sepa_file = SepaFile.objects.get()
    result = status_report_import(content=make_pain002(message_id="G-1", original_message_id=sepa_file.message_id,
                                                       group_reject="FF01"), today=TUESDAY)
    assert result.ok and len(result.rejected) == 5
    assert set(Payment.objects.values_list("status", flat=True)) == {"failed"}
    assert set(InstallmentPlan.objects.values_list("status", flat=True)) == {"suspended"}


def test_entities_are_not_expanded():
    evil = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt>'
            b'<GrpHdr><MsgId>&x;</MsgId></GrpHdr><OrgnlGrpInfAndSts><OrgnlMsgId>M</OrgnlMsgId>'
            b'</OrgnlGrpInfAndSts></CstmrPmtStsRpt></Document>')
    try:
        report = pain002.parse(evil)
    except pain002.Pain002Error:
        return
    assert "root:" not in report.message_id


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_the_parser_only_ever_raises_its_own_error(data):
    try:
        pain002.parse(data)
    except pain002.Pain002Error:
        pass


@settings(max_examples=60, deadline=None)
@given(codes=st.lists(st.sampled_from(["AM04", "MS03", "MD01", "AC04", "XX99", ""]), min_size=1, max_size=6))
def test_every_rejected_transaction_is_read_back(codes):
    rejected = [(f"E2E{i}", code) for i, code in enumerate(codes)]
    report = pain002.parse(make_pain002(message_id="M", original_message_id="O", rejected=rejected))
    assert [(r.end_to_end_id, r.reason_code) for r in report.rejections] == [
        (e2e, code or "MS03") for e2e, code in rejected]


def test_status_reports_are_told_apart_from_other_bank_files():
    report = make_pain002(message_id="M", original_message_id="O", rejected=[("E", "AM04")])
    assert pain002.is_status_report(report)
    camt = (b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">'
            b"<BkToCstmrDbtCdtNtfctn/></Document>")
    assert not pain002.is_status_report(camt)
    assert not pain002.is_status_report(b":20:MT940 statement\r\n:25:FR76")
    assert not pain002.is_status_report(b"")


def test_a_direct_debit_retry_is_pre_notified_too(five_plans):
    from collections_app.sepa.services import direct_debits_prenotify

    plan = five_plans[0]
    sepa_file = SepaFile.objects.get()
    status_report_import(content=make_pain002(message_id="PN-1", original_message_id=sepa_file.message_id,
                                              rejected=[(e2e_of(plan), "AM04")]), today=TUESDAY)
    direct_debits_prenotify(today=dt.date(2026, 12, 24))
    event = Event.objects.get(type="direct_debit.upcoming", payload__attempt=2)
    assert event.payload["installment_id"] == plan.installments.get(sequence=1).pk
    assert event.payload["collection_date"] == "2026-12-28"
    assert direct_debits_prenotify(today=dt.date(2026, 12, 24)) == 0


def test_import_statement_recognises_a_status_report_and_applies_it(five_plans, tmp_path):
    """pain.002 files come in through the bank-file doors of reconciliation too."""
    from io import StringIO

    sepa_file = SepaFile.objects.get()
    good = tmp_path / "pain002.xml"
    good.write_bytes(make_pain002(message_id="VIA-STMT-1", original_message_id=sepa_file.message_id,
                                  rejected=[(e2e_of(five_plans[2]), "MD01")]))
    out = StringIO()
    call_command("import_statement", str(good), stdout=out)
    assert "pain.002 status report, 1 rejected" in out.getvalue()
    five_plans[2].refresh_from_db()
    assert five_plans[2].status == "suspended"
    assert StatusReport.objects.filter(message_id="VIA-STMT-1").exists()
    # a report naming an unknown transaction is an error of that file, and nothing is applied
    bad = tmp_path / "bad.xml"
    bad.write_bytes(make_pain002(message_id="VIA-STMT-2", original_message_id=sepa_file.message_id,
                                 rejected=[(e2e_of(five_plans[0]), "AM04"), ("UNKNOWN", "AM04")]))
    with pytest.raises(CommandError, match="unknown end-to-end id UNKNOWN"):
        call_command("import_statement", str(bad))
    five_plans[0].refresh_from_db()
    assert five_plans[0].status == "active"
    assert not StatusReport.objects.filter(message_id="VIA-STMT-2").exists()
