"""The collection run: due SEPA instalments become XSD-valid pain.008 files, one per creditor,
collection date and sequence type, on TARGET2 business days, with FRST then RCUR."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from collections_app.models import Installment, Mandate, Payment
from collections_app.retries.models import CollectionAttempt
from collections_app.sepa import pain008
from collections_app.sepa.models import CollectionSettings, SepaFile
from collections_app.sepa.services import mandate_amend, sepa_export
from notifications.models import Event
from tests.collections_app.collection_helpers import DEBTOR_IBANS, sepa_plan
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"}
MONDAY = dt.date(2026, 11, 30)


def xsd_valid(sepa_file: SepaFile) -> None:
    """Checked with a second, independent validator (xmlschema) against the vendored official XSD."""
    schema = xmlschema.XMLSchema(str(pain008.XSD_DIR / f"{sepa_file.scheme_version}.xsd"))
    schema.validate(sepa_file.content.encode())


def test_due_instalments_become_one_valid_file_per_sequence_type(creditor):
    customers = CustomerFactory.create_batch(3, creditor=creditor)
    plans = [sepa_plan(c, first_due=MONDAY + dt.timedelta(days=1), iban=DEBTOR_IBANS[i])
             for i, c in enumerate(customers)]
    # when: Monday's run; lead time 1 TARGET2 business day -> collection on Tuesday
    result = sepa_export(today=MONDAY)
    # then
    assert result.submitted == 3 and not result.errors
    sepa_file = SepaFile.objects.get()
    assert (sepa_file.collection_date, sepa_file.sequence_type) == (dt.date(2026, 12, 1), "FRST")
    assert sepa_file.control_sum == Decimal("90.00") and sepa_file.transaction_count == 3
    xsd_valid(sepa_file)
    tree = etree.fromstring(sepa_file.content.encode())
    assert tree.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:CtrlSum", namespaces=NS) == "90.00"
    assert tree.findtext("p:CstmrDrctDbtInitn/p:PmtInf/p:PmtTpInf/p:SeqTp", namespaces=NS) == "FRST"
    assert tree.findtext("p:CstmrDrctDbtInitn/p:PmtInf/p:ReqdColltnDt", namespaces=NS) == "2026-12-01"
    mandates = {m.text for m in tree.iterfind(".//p:MndtId", NS)}
    assert mandates == {p.mandate.reference for p in plans}
    # the file was dropped in the outgoing folder and the instalments are in flight
    assert Path(sepa_file.written_path).read_text() == sepa_file.content
    assert sepa_file.status == SepaFile.Status.WRITTEN
    assert set(Installment.objects.filter(sequence=1).values_list("status", flat=True)) == {"processing"}
    assert Payment.objects.filter(status="processing", method="sepa_dd").count() == 3
    event = Event.objects.get(type="direct_debit.submitted")
    assert event.payload["transaction_count"] == 3 and event.payload["sequence_type"] == "FRST"


def test_frst_then_rcur_and_settlement_after_the_collection_date(creditor, customer):
    plan = sepa_plan(customer, first_due=MONDAY + dt.timedelta(days=1))
    sepa_export(today=MONDAY)
    # the next month: the first debit settled (no reject by its date), the second one is RCUR
    result = sepa_export(today=dt.date(2026, 12, 31))
    first = plan.installments.get(sequence=1)
    assert first.status == Installment.Status.PAID
    mandate = Mandate.objects.get(pk=plan.mandate_id)
    assert mandate.first_collected_at == dt.date(2026, 12, 1)
    assert [f["sequence_type"] for f in result.files] == ["RCUR"]
    rcur = SepaFile.objects.get(sequence_type="RCUR")
    # Thursday 31 Dec + 1 business day: Friday 1 January is a TARGET2 holiday -> Monday 4 January
    assert rcur.collection_date == dt.date(2027, 1, 4)
    xsd_valid(rcur)


def test_collection_dates_skip_weekends_and_target2_holidays(creditor, customer):
    CollectionSettings.objects.create(creditor=creditor, lead_days=2)
    sepa_plan(customer, first_due=dt.date(2026, 12, 24))
    # Wednesday 23 Dec + 2 business days: Thu 24 (1), Fri 25 and Sat/Sun closed, Mon 28 (2)
    result = sepa_export(today=dt.date(2026, 12, 23))
    assert result.files[0]["collection_date"] == dt.date(2026, 12, 28)
    # run the day before: not due yet (the file goes as late as the lead time allows)
    assert SepaFile.objects.count() == 1


def test_version_08_is_a_creditor_setting_and_validates(creditor, customer):
    CollectionSettings.objects.create(creditor=creditor, scheme_version="pain.008.001.08")
    sepa_plan(customer, first_due=MONDAY)
    sepa_export(today=MONDAY)
    sepa_file = SepaFile.objects.get()
    assert sepa_file.scheme_version == "pain.008.001.08"
    assert "urn:iso:std:iso:20022:tech:xsd:pain.008.001.08" in sepa_file.content
    assert "<BICFI>" in sepa_file.content
    xsd_valid(sepa_file)


def test_amendment_is_carried_into_the_next_file_only(creditor, customer):
    plan = sepa_plan(customer, first_due=MONDAY)
    mandate = mandate_amend(mandate=plan.mandate, iban=DEBTOR_IBANS[1])
    sepa_export(today=MONDAY)
    first = SepaFile.objects.get()
    xsd_valid(first)
    tree = etree.fromstring(first.content.encode())
    assert tree.findtext(".//p:AmdmntInd", namespaces=NS) == "true"
    assert tree.findtext(".//p:AmdmntInfDtls/p:OrgnlDbtrAcct/p:Id/p:IBAN", namespaces=NS) == DEBTOR_IBANS[0]
    assert tree.findtext(".//p:DbtrAcct/p:Id/p:IBAN", namespaces=NS) == mandate.iban == DEBTOR_IBANS[1]
    assert Event.objects.filter(type="mandate.amended").count() == 1
    sepa_export(today=dt.date(2026, 12, 31))
    second = SepaFile.objects.get(sequence_type="RCUR")
    assert "AmdmntInd" not in second.content


def test_unused_mandate_expires_after_36_months_and_its_instalment_fails(creditor, customer):
    plan = sepa_plan(customer, first_due=MONDAY)
    Mandate.objects.filter(pk=plan.mandate_id).update(signed_at=dt.datetime(2023, 11, 1, tzinfo=dt.UTC))
    result = sepa_export(today=MONDAY)
    assert Mandate.objects.get(pk=plan.mandate_id).status == Mandate.Status.EXPIRED
    assert result.submitted == 0 and SepaFile.objects.count() == 0
    attempt = CollectionAttempt.objects.get()
    assert (attempt.status, attempt.reason_code, attempt.will_retry) == ("failed", "MANDATE_INACTIVE", False)
    plan.refresh_from_db()
    assert plan.status == "suspended"


def test_cancelled_mandate_is_not_debited(creditor, customer):
    from collections_app.services import mandate_cancel

    plan = sepa_plan(customer, first_due=MONDAY)
    mandate_cancel(mandate=plan.mandate, cancelled_by="debtor")
    sepa_export(today=MONDAY)
    assert SepaFile.objects.count() == 0
    assert Payment.objects.get().status == "failed"


def test_running_twice_puts_nothing_in_two_files(creditor, customer):
    sepa_plan(customer, first_due=MONDAY)
    sepa_export(today=MONDAY)
    again = sepa_export(today=MONDAY)
    assert again.submitted == 0 and again.files == []
    assert SepaFile.objects.count() == 1 and Payment.objects.count() == 1


def test_an_invalid_file_is_never_stored_and_nothing_is_claimed(creditor, customer):
    sepa_plan(customer, first_due=MONDAY)
    type(creditor).objects.filter(pk=creditor.pk).update(iban="NOT-AN-IBAN")
    result = sepa_export(today=MONDAY)
    assert result.errors and "does not validate" in result.errors[0]
    assert SepaFile.objects.count() == 0 and Payment.objects.count() == 0
    assert CollectionAttempt.objects.get().status == "scheduled"


def test_a_one_off_debit_from_the_pay_page_is_filed_settled_or_rejected(creditor, customer):
    from collections_app import services
    from collections_app.sepa.services import status_report_import
    from tests.collections_app.collection_helpers import pain002
    from tests.factories import make_request

    paid, rejected = make_request(customer, amount="45.00"), make_request(customer, amount="12.00")
    for request, iban in ((paid, DEBTOR_IBANS[2]), (rejected, DEBTOR_IBANS[3])):
        mandate = services.mandate_create(creditor=creditor, customer=customer, holder_name="Zoé Dupont", iban=iban)
        services.payment_create(customer=customer, method="sepa_dd", amount=request.amount,
                                payment_request=request, mandate=mandate)
    result = sepa_export(today=MONDAY)
    sepa_file = SepaFile.objects.get()
    assert result.submitted == 2 and sepa_file.sequence_type == "FRST" and sepa_file.control_sum == Decimal("57.00")
    xsd_valid(sepa_file)
    assert paid.reference in sepa_file.content
    assert sepa_export(today=MONDAY).submitted == 0  # never in two files
    e2e = Payment.objects.get(payment_request=rejected).end_to_end_id
    status_report_import(content=pain002(message_id="R-OOFF", original_message_id=sepa_file.message_id,
                                         rejected=[(e2e, "AC04")]), today=MONDAY)
    sepa_export(today=dt.date(2026, 12, 3))  # settled once a business day has passed after the 1st
    paid.refresh_from_db()
    rejected.refresh_from_db()
    assert paid.status == "paid" and rejected.status == "open"
    assert set(CollectionAttempt.objects.values_list("status", "reason_code")) == {("succeeded", ""),
                                                                                   ("failed", "AC04")}


def test_a_creditor_without_identifier_is_reported(creditor, customer):
    sepa_plan(customer, first_due=MONDAY)
    type(creditor).objects.filter(pk=creditor.pk).update(sepa_creditor_identifier="")
    result = sepa_export(today=MONDAY)
    assert result.errors == [f"{creditor.name} has direct-debit plans but no SEPA creditor identifier or IBAN."]
    assert not Payment.objects.exists()


def test_a_debit_in_another_currency_never_goes_into_a_file(creditor):
    from collections_app import services
    from tests.factories import make_invoice

    customer = CustomerFactory(creditor=creditor, currency="GBP")
    mandate = services.mandate_create(creditor=creditor, customer=customer, holder_name="John", iban=DEBTOR_IBANS[0])
    request = services.payment_request_create(creditor=creditor, customer=customer,
                                              invoices=[make_invoice(customer, amount="20.00", currency="GBP")])
    services.payment_create(customer=customer, method="sepa_dd", amount="20.00", payment_request=request,
                            mandate=mandate)
    result = sepa_export(today=MONDAY)
    assert result.failed == 1 and not SepaFile.objects.exists()
    assert Payment.objects.get().reason_code == "CURRENCY_NOT_EUR"


def test_staff_write_a_file_to_the_outgoing_folder_again(admin_client, creditor, customer):
    # given: a written file that the bank channel lost
    sepa_plan(customer, first_due=MONDAY + dt.timedelta(days=1))
    sepa_export(today=MONDAY)
    sepa_file = SepaFile.objects.get()
    Path(sepa_file.written_path).unlink()
    # when
    admin_client.post("/admin/collections_app/sepafile/", {"action": "write_again",
                                                            "_selected_action": [sepa_file.pk]})
    # then: the same content is back, and the file is still a written file
    sepa_file.refresh_from_db()
    assert Path(sepa_file.written_path).read_text() == sepa_file.content
    assert sepa_file.status == SepaFile.Status.WRITTEN


def test_a_file_a_killed_run_recorded_but_did_not_write_leaves_within_minutes(creditor):
    from collections_app.sepa.tasks import write_pending_files

    customer = CustomerFactory(creditor=creditor)
    sepa_plan(customer, first_due=MONDAY + dt.timedelta(days=1), iban=DEBTOR_IBANS[0])
    # given a run that recorded its file and died before writing it
    sepa_export(today=MONDAY, write=False)
    sepa_file = SepaFile.objects.get()
    assert sepa_file.status == SepaFile.Status.GENERATED
    # when the write-sepa-files schedule passes (twice: once is enough)
    assert write_pending_files() == 1
    assert write_pending_files() == 0
    # then the file is in the outgoing folder, as the run would have left it
    sepa_file.refresh_from_db()
    assert sepa_file.status == SepaFile.Status.WRITTEN
    assert Path(sepa_file.written_path).read_text() == sepa_file.content
