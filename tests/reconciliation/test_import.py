from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from collections_app.models import Customer, Invoice, Payment, PaymentRequest
from notifications.models import Event
from reconciliation.imports import statement_import
from reconciliation.models import BankAccount, BankStatement, BankTransaction, Match, MatchingRule, Suggestion
from reconciliation.parsers import StatementParseError, UnsupportedFormat
from tests.reconciliation.conftest import sample

pytestmark = pytest.mark.django_db


def tx(**filters) -> BankTransaction:
    return BankTransaction.objects.get(**filters)


def test_camt053_bnp_virtual_iban_references_batch_return_and_review(world):
    result = statement_import(source=sample("camt053_v02_bnp.xml"), filename="camt053_v02_bnp.xml")
    assert result.format == "camt.053"
    assert result.created == 8  # 6 entries, the batch one split into its 3 transactions
    assert result.warnings == []  # the balances add up
    statement = BankStatement.objects.get()
    assert statement.version == "camt.053.001.02"
    assert statement.opening_balance == Decimal("1000.00") and statement.closing_balance == Decimal("2134.99")
    # a time-zone offset: 00:30 in Paris is still 4 March, not 3 March in UTC
    assert tx(bank_reference="BNP-0001").booking_date == dt.date(2024, 3, 4)
    assert statement.created_by_bank_at == dt.datetime(2024, 3, 4, 5, 0, tzinfo=dt.UTC)

    # rule 1: credited virtual IBAN -> the customer's open invoices, oldest first
    for inv in (world.dupont_old, world.dupont_new):
        inv.refresh_from_db()
    assert world.dupont_old.status == Invoice.Status.PAID
    assert world.dupont_new.amount_paid == Decimal("200.00")
    assert world.dupont_new.status == Invoice.Status.PARTIALLY_PAID
    assert tx(bank_reference="BNP-0001").matched_rule.kind == MatchingRule.Kind.VIRTUAL_IBAN

    # the batch entry, rule 2: an invoice number; one written with spaces and lower case and
    # short by 0.50 (under the 1.00 tolerance: written off); an RF creditor reference, 0.50 over
    batch = BankTransaction.objects.filter(batch_reference="BATCH-0304-A").order_by("pk")
    assert [t.amount for t in batch] == [Decimal("120.00"), Decimal("79.50"), Decimal("250.50")]
    assert {t.status for t in batch} == {BankTransaction.Status.MATCHED}
    world.curie_1.refresh_from_db()
    world.curie_2.refresh_from_db()
    world.martin_inv.refresh_from_db()
    world.martin.refresh_from_db()
    assert world.curie_1.status == Invoice.Status.PAID
    assert world.curie_2.status == Invoice.Status.WRITTEN_OFF
    assert world.curie_2.amount_written_off == Decimal("0.50")
    assert world.martin_inv.status == Invoice.Status.PAID
    assert world.martin.credit_balance == Decimal("0.50")
    # the invalid counterparty IBAN is kept as the bank gave it
    assert tx(end_to_end_id="MC-0002").counterparty_iban == "FR76 3000 1007 94XX"

    # a direct-debit return: the payment is reversed with its reason code
    world.bernard_dd.refresh_from_db()
    assert world.bernard_dd.status == Payment.Status.REVERSED
    assert world.bernard_dd.reason_code == "AM04"
    assert tx(end_to_end_id="E2E-DD-0001").status == BankTransaction.Status.RETURN

    # the review queue: an unknown payer, and a suggestion by amount + name for the other
    assert tx(bank_reference="BNP-0004").status == BankTransaction.Status.UNMATCHED
    suggestion = Suggestion.objects.get(transaction__bank_reference="BNP-0005")
    assert suggestion.invoice == world.bernard_open
    assert tx(bank_reference="BNP-0006").status == BankTransaction.Status.IGNORED
    types = list(Event.objects.values_list("type", flat=True))
    for expected in ("transfer.received", "payment.succeeded", "invoice.paid", "reconciliation.unmatched",
                     "customer.credit_balance_changed", "payment.reversed", "bank_statement.imported"):
        assert expected in types, expected
    assert MatchingRule.objects.get(kind=MatchingRule.Kind.REFERENCE).matched_count == 3


def test_same_file_twice_and_overlapping_statement_create_no_duplicates(world):
    first = statement_import(source=sample("camt053_v02_bnp.xml"))
    payments = Payment.objects.count()
    events = Event.objects.exclude(type="bank_statement.imported").count()
    again = statement_import(source=sample("camt053_v02_bnp.xml"))
    assert again.already_imported and again.created == 0 and again.duplicates == first.created
    # the same transactions in another file (a re-sent statement with another header)
    overlapping = sample("camt053_v02_bnp.xml").replace(b"STMT-2024-03-04-0001", b"STMT-2024-03-04-RESENT")
    result = statement_import(source=overlapping)
    assert not result.already_imported
    assert result.created == 0 and result.duplicates == 8
    assert BankTransaction.objects.count() == 8
    # the day's statement after an intraday one, numbering the same entries differently
    renumbered = re.sub(rb"<NtryRef>(\w+)</NtryRef>", lambda m: b"<NtryRef>EOD-" + m[1][::-1] + b"0</NtryRef>",
                        overlapping.replace(b"STMT-2024-03-04-RESENT", b"STMT-2024-03-04-EOD"))
    assert renumbered.count(b"<NtryRef>EOD-") == 6
    assert statement_import(source=renumbered).created == 0
    assert BankTransaction.objects.count() == 8
    assert Payment.objects.count() == payments
    assert Event.objects.exclude(type="bank_statement.imported").count() == events


def test_unknown_account_is_created_for_review_and_balances_warning(world):
    result = statement_import(source=sample("camt053_v08_sg_unknown_account.xml"))
    account = BankAccount.objects.get(account_id="FR1420041010050500013M02606")
    assert account.needs_review and account.creditor is None and account.bic == "PSSTFRPPPAR"
    assert any("do not add up" in w for w in result.warnings)
    assert BankStatement.objects.get().warnings == result.warnings
    # camt.053.001.08: party names under Pty; the request reference settles the payment request
    t = tx(end_to_end_id="LUC-77")
    assert t.counterparty_name == "Lucie Moreau"
    assert t.status == BankTransaction.Status.MATCHED
    world.moreau_request.refresh_from_db()
    assert world.moreau_request.status == PaymentRequest.Status.PAID
    assert Event.objects.filter(type="payment_request.paid").exists()
    assert Event.objects.filter(type="bank_account.created").exists()


def test_camt054_direct_debit_return_fails_the_pending_payment(world):
    statement_import(source=sample("camt054_v04_returns.xml"))
    world.roux_dd.refresh_from_db()
    assert world.roux_dd.status == Payment.Status.FAILED
    assert world.roux_dd.reason_code == "MD06"
    assert Event.objects.filter(type="payment.failed", payload__reason_code="MD06").exists()
    # the end-to-end id carries the invoice number: rule 2
    world.roux_inv.refresh_from_db()
    assert world.roux_inv.status == Invoice.Status.PAID


def test_mt940_german_structured_86(world):
    result = statement_import(source=sample("mt940_de_commerzbank.sta"))
    assert result.format == "mt940"
    credit = tx(bank_reference="DB-REF-1")
    assert credit.counterparty_name == "Hans Mueller"
    assert credit.counterparty_iban == "DE02120300000000202051"
    assert "INV-2024-0040" in credit.remittance_info
    ret = tx(bank_reference="DB-REF-2")
    assert ret.is_reversal and ret.reason_code == "AC04" and ret.end_to_end_id == "E2E-DD-0003"
    # BLZ/account number: the account is created under its IBAN, to review
    assert BankAccount.objects.get(account_id="DE89370400440532013000").needs_review


def test_mt940_blz_account_and_french_rib_find_the_account_configured_by_iban(world):
    # given accounts configured by their IBAN, and statements naming them the banks' own way
    german = BankAccount.objects.create(creditor=world.acme, name="Commerzbank", iban="DE89370400440532013000",
                                        account_id="DE89370400440532013000")
    statement_import(source=sample("mt940_de_commerzbank.sta"))
    rib = sample("mt940_nl_abnamro.sta").replace(b":25:NL20INGB0001234567", b":25:30004/00828/0001012345691")
    statement_import(source=rib)
    # then no account is invented: each statement is filed under the configured account
    assert BankAccount.objects.count() == 2
    assert tx(bank_reference="DB-REF-1").bank_account == german
    assert tx(bank_reference="00000003").bank_account == world.account


def test_mt940_dutch_ing_and_abnamro_details(world):
    dutch = Customer.objects.create(creditor=world.acme, external_ref="NL1", name="A. de Vries")
    from tests.reconciliation.conftest import invoice

    inv = invoice(dutch, "INV-2024-0050", "60.00")
    statement_import(source=sample("mt940_nl_ing.sta"))
    credit = tx(amount=Decimal("60.00"), direction="CRDT")
    assert credit.counterparty_name == "A. DE VRIES"
    assert credit.counterparty_iban == "NL91ABNA0417164300"
    ret = tx(amount=Decimal("30.00"))
    assert ret.is_reversal and ret.reason_code == "MD06" and ret.end_to_end_id == "E2E-DD-0004"
    statement_import(source=sample("mt940_nl_abnamro.sta"))
    abn = tx(amount=Decimal("15.00"))
    assert abn.counterparty_name == "A. DE VRIES" and abn.remittance_info == "INV-2024-0051"
    # the account of both files is the same: one bank account, the IBAN without the currency suffix
    assert BankAccount.objects.filter(account_id="NL20INGB0001234567").count() == 1
    # the ING statement's account is not the creditor's: matched across creditors by invoice number
    inv.refresh_from_db()
    assert inv.status == Invoice.Status.PAID


def test_cfonb120(world):
    moreau_inv = Invoice.objects.create(creditor=world.acme, customer=world.moreau, external_ref="INV-2024-0060",
                                        amount_total=Decimal("60.00"), issue_date=dt.date(2024, 2, 1),
                                        due_date=dt.date(2024, 3, 1))
    result = statement_import(source=sample("cfonb120_lcl.txt"))
    assert result.format == "cfonb120" and result.warnings == []
    statement = BankStatement.objects.get()
    assert statement.bank_account == world.account  # the RIB was turned into the configured IBAN
    assert statement.opening_balance == Decimal("1000.00") and statement.closing_balance == Decimal("1013.00")
    credit = tx(direction="CRDT")
    assert credit.counterparty_name == "LUCIE MOREAU" and credit.end_to_end_id == "LM-2024-0060"
    moreau_inv.refresh_from_db()
    assert moreau_inv.status == Invoice.Status.PAID
    ret = tx(end_to_end_id="E2E-DD-0005")
    assert ret.is_reversal and ret.reason_code == "AC04" and ret.amount == Decimal("35.00")


def test_malformed_file_gives_a_clear_error_and_imports_nothing(world):
    with pytest.raises(StatementParseError) as exc:
        statement_import(source=sample("malformed_camt053.xml"))
    assert "malformed XML" in str(exc.value) and "line" in str(exc.value)
    assert BankStatement.objects.count() == 0 and BankTransaction.objects.count() == 0
    assert not BankAccount.objects.exclude(pk=world.account.pk).exists()


def test_xml_bomb_is_rejected(world):
    with pytest.raises(StatementParseError, match="DTD"):
        statement_import(source=sample("xml_bomb_camt053.xml"))
    assert BankTransaction.objects.count() == 0


def test_unknown_format_and_size_limit(world, settings):
    with pytest.raises(UnsupportedFormat):
        statement_import(source=b"hello;world\n1;2\n")
    settings.RECONCILIATION_MAX_FILE_BYTES = 1000
    from collections_app.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="too large"):
        statement_import(source=sample("camt053_v02_bnp.xml"))


def test_pain002_is_recognised_and_dispatched(world):
    content = (b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">'
               b"<CstmrPmtStsRpt/></Document>")
    from reconciliation.parsers import detect

    assert detect(content) == "pain.002"


def test_rerunning_matching_changes_nothing(world):
    from reconciliation.matching import transactions_match

    statement_import(source=sample("camt053_v02_bnp.xml"))
    snapshot = (list(BankTransaction.objects.order_by("pk").values_list("status", flat=True)),
                Payment.objects.count(), Match.objects.count(), Event.objects.count(),
                list(Suggestion.objects.order_by("pk").values_list("pk", "score")))
    transactions_match()
    transactions_match()
    assert snapshot == (list(BankTransaction.objects.order_by("pk").values_list("status", flat=True)),
                        Payment.objects.count(), Match.objects.count(), Event.objects.count(),
                        list(Suggestion.objects.order_by("pk").values_list("pk", "score")))


def test_pending_entries_are_left_for_when_they_are_booked(world):
    # given a statement whose last entry is still pending (Sts PDNG)
    content = sample("camt053_v04_prefixed_latin1.xml")
    # when
    result = statement_import(source=content, filename="camt053_v04_prefixed_latin1.xml", match=False)
    # then the booked ones are imported, the balances add up without the pending one, and
    # the statement says what was left out
    assert result.created == 3
    assert not BankTransaction.objects.filter(bank_reference="L1-0003").exists()
    assert result.warnings == ["1 pending entry was not imported: it will be once the bank books it."]
    assert BankStatement.objects.get().warnings == result.warnings


@pytest.mark.parametrize("text", ["FACT/INV-2024-0001", "/INV/INV-2024-0001/ROC/CURIE", "REF.INV-2024-0001.MERCI",
                                  "inv 2024 0001"])
def test_references_inside_slash_and_dot_separated_remittance_fields(world, text):
    from tests.reconciliation.builders import camt053

    # when a transfer quotes the invoice inside the structured fields banks and payers write
    statement_import(source=camt053(world.account.account_id, [
        {"amount": "120.00", "ref": "SLASH-1", "text": text, "name": "M Curie"}]))
    # then it is matched to that invoice, not left for review
    world.curie_1.refresh_from_db()
    assert world.curie_1.status == Invoice.Status.PAID
    assert tx(bank_reference="SLASH-1").status == BankTransaction.Status.MATCHED


def _return_without_e2e(account_id: str, ref: str, mandate: str, amount: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.04"><BkToCstmrDbtCdtNtfctn>
<GrpHdr><MsgId>RET-{ref}</MsgId><CreDtTm>2024-03-06T06:00:00+01:00</CreDtTm></GrpHdr>
<Ntfctn><Id>N-{ref}</Id><Acct><Id><IBAN>{account_id}</IBAN></Id></Acct>
<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2024-03-06</Dt></BookgDt>
<AcctSvcrRef>{ref}</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId><MndtId>{mandate}</MndtId></Refs>
<RtrInf><Rsn><Cd>MD06</Cd></Rsn></RtrInf></TxDtls></NtryDtls></Ntry></Ntfctn>
</BkToCstmrDbtCdtNtfctn></Document>""".encode()


def test_a_return_without_end_to_end_id_is_found_by_its_mandate_and_amount(world):
    from reconciliation.matching import transactions_match

    # given a collected debit and a bank that returns it naming only the mandate (UMR)
    payment = world.bernard_dd
    mandate = payment.mandate.reference
    # when
    statement_import(source=_return_without_e2e(world.account.account_id, "RET-1", mandate, "45.00"))
    # then that debit is reversed with the bank's reason code
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REVERSED and payment.reason_code == "MD06"
    assert tx(bank_reference="RET-1").status == BankTransaction.Status.RETURN
    # a return whose mandate and amount name no single debit goes to review
    statement_import(source=_return_without_e2e(world.account.account_id, "RET-2", mandate, "99.00"))
    assert tx(bank_reference="RET-2").status == BankTransaction.Status.UNMATCHED
    assert transactions_match(transaction_ids=[tx(bank_reference="RET-2").pk]) == {"unmatched": 1}


def test_transactions_stored_by_an_import_that_died_before_matching_are_matched_later(world):
    # given a statement stored, whose worker died before matching it
    content = sample("camt053_v02_bnp.xml")
    statement_import(source=content, filename="a.xml", match=False)
    assert BankTransaction.objects.filter(status=BankTransaction.Status.NEW).count() == 8
    # when the file is dropped again: already imported, but its matching is finished
    again = statement_import(source=content, filename="a.xml")
    assert again.already_imported and again.created == 0
    assert again.matching["matched"] > 0
    assert not BankTransaction.objects.filter(status=BankTransaction.Status.NEW).exists()
    world.dupont_old.refresh_from_db()
    assert world.dupont_old.status == Invoice.Status.PAID


def test_the_schedule_matches_what_was_stored_but_never_matched(world):
    from reconciliation.tasks import match_new_transactions

    statement_import(source=sample("camt053_v02_bnp.xml"), filename="a.xml", match=False)
    counts = match_new_transactions()
    assert counts["matched"] > 0 and not BankTransaction.objects.filter(status=BankTransaction.Status.NEW).exists()
    # unmatched ones wait in the review queue; the schedule does not go over them again
    assert match_new_transactions() == {}


def test_cfonb_identical_fees_rcn_purpose_and_ret_reason(world):
    # given a CFONB file whose entry numbers are left at zeros, with an RCN reference followed by
    # its purpose, a payer identifier that is no IBAN, and a return whose reason is in RET
    result = statement_import(source=sample("cfonb120_zero_entry_numbers.txt"), filename="cfonb.txt")
    # then both identical fees are kept, and the balances add up
    assert result.created == 4 and result.duplicates == 0 and result.warnings == []
    assert BankTransaction.objects.filter(amount=Decimal("7.90")).count() == 2
    credit = BankTransaction.objects.get(amount=Decimal("120.00"))
    assert credit.end_to_end_id == "E2E-PM-2024-03" and credit.counterparty_iban == ""
    assert credit.status == BankTransaction.Status.MATCHED  # the invoice number in LCC
    # the return reverses our direct debit with the reason code from RET
    world.bernard_dd.refresh_from_db()
    assert world.bernard_dd.status == Payment.Status.REVERSED and world.bernard_dd.reason_code == "AC04"
    # importing it again creates nothing
    assert statement_import(source=sample("cfonb120_zero_entry_numbers.txt"), filename="again.txt").created == 0


def test_placeholder_bank_references_do_not_merge_identical_movements(world):
    from tests.reconciliation.builders import camt053

    # given two identical card-fee-like credits the same day whose bank reference is a placeholder
    entries = [{"amount": "15.00", "ref": "NOTPROVIDED", "text": "REMISE CB", "name": "CB"},
               {"amount": "15.00", "ref": "NOTPROVIDED", "text": "REMISE CB", "name": "CB"}]
    # when the statement is imported, then both are kept; and again, nothing more
    assert statement_import(source=camt053(world.account.account_id, entries), match=False).created == 2
    assert statement_import(source=camt053(world.account.account_id, entries) + b" ", match=False).created == 0


def test_structured_remittance_listing_the_invoices_paid(world):
    # given a transfer whose structured remittance lists the invoice paid (RfrdDocInf/Nb)
    statement = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>STRD</MsgId><CreDtTm>2024-03-05T06:00:00+01:00</CreDtTm></GrpHdr>
<Stmt><Id>STRD-1</Id><Acct><Id><IBAN>{world.account.account_id}</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Ntry><Amt Ccy="EUR">250.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2024-03-05</Dt></BookgDt>
<AcctSvcrRef>STRD-0001</AcctSvcrRef><NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>P. Martin</Nm></Pty></Dbtr></RltdPties>
<RmtInf><Strd><RfrdDocInf><Tp><CdOrPrtry><Cd>CINV</Cd></CdOrPrtry></Tp><Nb>INV-2024-0003</Nb></RfrdDocInf>
<AddtlRmtInf>Merci</AddtlRmtInf></Strd></RmtInf></TxDtls></NtryDtls></Ntry>
</Stmt></BkToCstmrStmt></Document>""".encode()
    # when
    statement_import(source=statement, filename="strd.xml")
    # then the invoice it names is paid
    world.martin_inv.refresh_from_db()
    assert world.martin_inv.status == Invoice.Status.PAID
    assert tx(bank_reference="STRD-0001").structured_reference == "INV-2024-0003"


def test_an_invoice_number_quoted_without_its_letters_matches_when_the_amount_is_exact(world):
    from tests.reconciliation.builders import camt053

    # given transfers quoting "2024-0003" for INV-2024-0003 (250.00): one of exactly that amount
    statement_import(source=camt053(world.account.account_id, [
        {"amount": "250.00", "ref": "NUM-1", "text": "facture 2024-0003", "name": "P Martin"},
        {"amount": "80.00", "ref": "NUM-2", "text": "facture 2024-0011", "name": "J Dupont"}]))
    # then it is matched; the other (not the amount due of INV-2024-0011) waits for review
    world.martin_inv.refresh_from_db()
    assert world.martin_inv.status == Invoice.Status.PAID
    assert tx(bank_reference="NUM-1").status == BankTransaction.Status.MATCHED
    assert tx(bank_reference="NUM-2").status == BankTransaction.Status.UNMATCHED


def test_a_virtual_iban_reported_as_a_sub_account_belongs_to_the_creditors_account(world):
    from tests.reconciliation.builders import camt053

    # given a bank that sends each virtual IBAN its own statement (no CdtrAcct in the entries)
    virtual = world.dupont_viban.iban
    content = camt053(virtual, [{"amount": "300.00", "ref": "SUB-1", "text": "virement", "name": "J Dupont"}])
    content = content.replace(f"<Othr><Id>{virtual}</Id></Othr>".encode(), f"<IBAN>{virtual}</IBAN>".encode())
    # when it is imported
    result = statement_import(source=content, filename="sub.xml")
    # then no account is invented: the movement is the creditor's, credited to the virtual IBAN
    assert BankAccount.objects.count() == 1 and result.warnings == []
    movement = tx(bank_reference="SUB-1")
    assert movement.bank_account == world.account and movement.credited_iban == virtual
    assert movement.status == BankTransaction.Status.MATCHED
    world.dupont_old.refresh_from_db()
    assert world.dupont_old.status == Invoice.Status.PAID


def test_intraday_camt052_reports_then_the_days_camt053_count_each_movement_once(world):
    from tests.reconciliation.builders import camt053

    # given the bank's intraday reports (camt.052), cumulative through the day
    entries = [{"amount": "120.00", "ref": "IDR-1", "text": "INV-2024-0001", "name": "M Curie"},
               {"amount": "33.00", "ref": "IDR-2", "text": "merci", "name": "Inconnu"}]

    def intraday(items: list[dict]) -> bytes:
        return (camt053(world.account.iban, items).replace(b"camt.053.001.02", b"camt.052.001.02")
                .replace(b"BkToCstmrStmt>", b"BkToCstmrAcctRpt>").replace(b"<Stmt>", b"<Rpt>")
                .replace(b"</Stmt>", b"</Rpt>"))

    morning = statement_import(source=intraday(entries[:1]))
    assert morning.format == "camt.052" and morning.created == 1 and morning.matching["matched"] == 1
    noon = statement_import(source=intraday(entries))
    assert (noon.created, noon.duplicates) == (1, 1)
    # when the day's statement arrives with the same movements
    evening = statement_import(source=camt053(world.account.iban, entries))
    # then nothing is counted twice
    assert (evening.created, evening.duplicates) == (0, 2)
    assert BankTransaction.objects.count() == 2
    world.curie_1.refresh_from_db()
    assert world.curie_1.amount_paid == Decimal("120.00")
