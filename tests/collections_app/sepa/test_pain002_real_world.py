"""pain.002 reports shaped like the ones banks really send: old 001.02 layout, national and
missing namespaces, prefixes, BOMs, envelopes, Latin-1, whole-block rejections, transactions
known only by our instruction id. The samples hold placeholders for the ids of our own file."""
from __future__ import annotations

from pathlib import Path

import pytest

from collections_app.models import Payment
from collections_app.retries.models import CollectionAttempt
from collections_app.sepa import pain002
from collections_app.sepa.models import SepaFile, StatusReport
from collections_app.sepa.services import status_report_import
from notifications.models import Event
from tests.collections_app.sepa.test_status_reports import TUESDAY, e2e_of, five_plans  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).parent / "samples"


def attempt_of(plan) -> CollectionAttempt:
    return CollectionAttempt.objects.get(installment__plan=plan, installment__sequence=1, number=1)


def sample(name: str, plans, block: str | None = None) -> bytes:
    """The sample with our message id, and the end-to-end / instruction ids of `plans` in order."""
    message_id = SepaFile.objects.get().message_id
    content = (SAMPLES / name).read_bytes()
    content = content.replace(b"$BLOCK", (block or message_id).encode())
    content = content.replace(b"$ORIGINAL", message_id.encode())
    for index, plan in enumerate(plans, start=1):
        attempt = attempt_of(plan)
        content = content.replace(f"$E2E_{index}".encode(), attempt.payment.end_to_end_id.encode())
        content = content.replace(f"$INSTR_{index}".encode(), f"A{attempt.pk}".encode())
    return content


def statuses(plans) -> list[str]:
    return [Payment.objects.get(pk=attempt_of(plan).payment_id).status for plan in plans]


def test_a_payment_information_block_rejected_as_a_whole_fails_the_payments_of_that_block_only(five_plans):
    # a block we never sent: nothing of the report is applied, not even to the message it names
    foreign = sample("pain002_001.10_postbank_ch_block_rjct.xml", [], block="PMTINF-OF-SOMEONE-ELSE")
    events_before = Event.objects.count()
    result = status_report_import(content=foreign, today=TUESDAY)
    assert not result.ok
    assert "Unknown payment information block PMTINF-OF-SOMEONE-ELSE" in result.errors[0]
    assert statuses(five_plans) == ["processing"] * 5
    assert not StatusReport.objects.exists() and Event.objects.count() == events_before
    # our block (its id is our message id): every payment of it fails
    result = status_report_import(content=sample("pain002_001.10_postbank_ch_block_rjct.xml", []), today=TUESDAY)
    assert result.ok and len(result.rejected) == 5
    assert {r["reason_code"] for r in result.rejected} == {"AC01"}
    assert statuses(five_plans) == ["failed"] * 5


def test_a_whole_file_rejection_that_echoes_transactions_without_ids_fails_every_payment(five_plans):
    report = sample("pain002_001.03_nordbank_fi_whole_file_rjct_echo.xml", [])
    parsed = pain002.parse(report)
    assert parsed.rejections == [] and set(parsed.block_rejections.values()) == {"DT01"}
    result = status_report_import(content=report, today=TUESDAY)
    assert result.ok and len(result.rejected) == 5
    # the block's reason is more precise than the file's "not specified"
    assert {r["reason_code"] for r in result.rejected} == {"DT01"}
    assert statuses(five_plans) == ["failed"] * 5
    # importing the same report again changes nothing
    failed_events = Event.objects.filter(type="payment.failed").count()
    again = status_report_import(content=report, today=TUESDAY)
    assert again.already_imported and Event.objects.filter(type="payment.failed").count() == failed_events
    assert StatusReport.objects.count() == 1


def test_the_old_001_02_layout_in_windows_1252(five_plans):
    a, b, c = five_plans[:3]
    result = status_report_import(content=sample("pain002_001.02_oldbank_tx_rjct_cp1252.xml", [a, b, c]),
                                  today=TUESDAY)
    assert result.ok and result.accepted == 1
    assert {r["end_to_end_id"]: r["reason_code"] for r in result.rejected} == {
        e2e_of(a): "AC04", e2e_of(b): "AM04"}
    assert statuses(five_plans) == ["failed", "failed", "processing", "processing", "processing"]
    assert "clôturé" in StatusReport.objects.get().content


def test_an_enveloped_report_matching_transactions_by_instruction_id(five_plans):
    a, b, c = five_plans[:3]
    report = sample("pain002_001.10_eurobank_envelope_instrid_only.xml", [a, b, c])
    assert pain002.is_status_report(report)
    result = status_report_import(content=report, today=TUESDAY)
    assert result.ok and result.accepted == 1
    assert {r["end_to_end_id"]: r["reason_code"] for r in result.rejected} == {
        e2e_of(a): "AM04", e2e_of(b): "MS02"}
    assert statuses(five_plans) == ["failed", "failed", "processing", "processing", "processing"]
    # another ISO 20022 message in the same kind of envelope is not taken for a status report
    camt = (b'<?xml version="1.0"?><BizMsgEnvlp><AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">'
            b"<MsgDefIdr>pain.002.001.10</MsgDefIdr></AppHdr>"
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><BkToCstmrDbtCdtNtfctn/></Document>'
            b"</BizMsgEnvlp>")
    assert not pain002.is_status_report(camt)
    with pytest.raises(pain002.Pain002Error, match="not a pain.002"):
        pain002.parse(camt)


def test_an_unknown_instruction_id_applies_nothing(five_plans):
    a, b, c = five_plans[:3]
    report = sample("pain002_001.10_eurobank_envelope_instrid_only.xml", [a, b, c]).replace(
        f"A{attempt_of(b).pk}<".encode(), b"A999999999<")
    result = status_report_import(content=report, today=TUESDAY)
    assert result.errors == ["Transaction 2: unknown instruction id A999999999."]
    assert statuses(five_plans) == ["processing"] * 5


def test_a_latin1_file_declared_utf8_from_a_swiss_bank(five_plans):
    a = five_plans[0]
    result = status_report_import(content=sample("pain002_001.03_alpbank_ch_latin1_declared_utf8.xml", [a]),
                                  today=TUESDAY)
    assert result.ok and [(r["end_to_end_id"], r["reason_code"]) for r in result.rejected] == [(e2e_of(a), "MD01")]
    assert statuses(five_plans)[0] == "failed"
    assert "Mandat ungültig" in StatusReport.objects.get().content


def test_a_prefixed_report_with_a_bom_and_a_blank_line_and_an_accepted_echo(five_plans):
    a = five_plans[0]
    report = sample("pain002_001.03_banquenord_prefixed_bom_echo.xml", [a])
    assert pain002.is_status_report(report)
    result = status_report_import(content=report, today=TUESDAY)
    assert result.ok and result.accepted == 1
    assert [(r["end_to_end_id"], r["reason_code"]) for r in result.rejected] == [(e2e_of(a), "MS02")]


def test_a_document_without_namespace(five_plans):
    a = five_plans[0]
    report = sample("pain002_001.10_hausbank_de_no_namespace.xml", [a])
    assert pain002.is_status_report(report)
    result = status_report_import(content=report, today=TUESDAY)
    assert result.ok and [(r["end_to_end_id"], r["reason_code"]) for r in result.rejected] == [(e2e_of(a), "AC04")]


def test_a_rejected_transaction_without_any_id_is_a_clear_error_and_applies_nothing(five_plans):
    report = sample("pain002_001.03_nordbank_fi_rjct_without_ids.xml", five_plans[:1])
    result = status_report_import(content=report, today=TUESDAY)
    assert result.errors == ["a rejected transaction has neither OrgnlEndToEndId nor OrgnlInstrId"]
    assert statuses(five_plans) == ["processing"] * 5 and not StatusReport.objects.exists()


def test_reports_in_an_envelope_or_without_namespace_come_through_the_statement_doors_too(five_plans):
    # the admin upload, the API, the drop folder and import_statement take any bank file
    from reconciliation.imports import statement_import

    a, b, c = five_plans[:3]
    result = statement_import(source=sample("pain002_001.10_eurobank_envelope_instrid_only.xml", [a, b, c]),
                              filename="Z01.xml")
    assert result.format == "pain.002" and result.other.ok
    bare = statement_import(source=sample("pain002_001.10_hausbank_de_no_namespace.xml", [c]), filename="dk.xml")
    assert bare.format == "pain.002" and bare.other.ok
    assert statuses(five_plans) == ["failed", "failed", "failed", "processing", "processing"]
