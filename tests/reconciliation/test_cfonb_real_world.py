"""CFONB 120 statements as real French banks and factoring companies write them (audit of the
reader against the public fixtures of other CFONB libraries: OCA's Odoo add-ons, airporting's
ebics-parser, silarhi/cfonb-parser, pennylane's cfonb gem). The samples are our own, shaped
like those files."""
from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from collections_app.models import Invoice
from reconciliation.imports import statement_import
from reconciliation.models import BankAccount, BankTransaction
from reconciliation.parsers import Entry, StatementHeader, detect, parse
from tests.reconciliation.conftest import sample


def items_of(content: bytes) -> tuple[list[StatementHeader], list[Entry]]:
    found = list(parse(io.BytesIO(content), detect(content)))
    headers = list({id(i): i for i in found if isinstance(i, StatementHeader)}.values())  # each comes twice
    return headers, [i for i in found if isinstance(i, Entry)]


def acme_account(world, iban: str) -> BankAccount:
    return BankAccount.objects.create(creditor=world.acme, name=iban, iban=iban, account_id=iban)


# --- 05 records without qualifier (factoring companies) ---


def test_cfonb_05_records_without_qualifier_continue_the_label():
    # given a factoring company's statement: its 05 records carry no qualifier (the value date
    # sits in columns 43-48) and continue the 31-character label, here cut inside an invoice
    # number; fees carry a blank interbank code; trailing spaces are trimmed
    headers, (credit, fee, vat) = items_of(sample("cfonb120_factor_label_continuation.txt"))
    # then the label is whole again, without a space where the record cut it
    assert credit.remittance_info == "VIREMENT RECU  FACTURE N INV-2024-0003 PAUL MARTIN"
    assert (credit.amount, credit.direction, credit.value_date) == (Decimal("250.00"), "CRDT", dt.date(2024, 6, 3))
    # and with one where the label ended before its 31 characters
    assert fee.remittance_info == "FRAIS DE GESTION DE CONTRAT EN LIGNE"
    assert vat.remittance_info == "TVA SUR FRAIS DE GESTION DE CONTRAT EN LIGNE"
    assert not any(key.isdigit() for e in (credit, fee, vat) for key in e.extra)  # no "624" qualifier
    # the bank's internal code alone when the interbank one is blank
    assert (fee.bank_transaction_code, vat.bank_transaction_code) == ("32BZ", "36BZ")
    assert credit.bank_transaction_code == "05/5051"
    assert headers[0].closing_balance == Decimal("4360.60")


def test_cfonb_05_record_with_a_blank_qualifier_is_text_too():
    # given a 05 record whose qualifier and date columns are blank
    content = sample("cfonb120_factor_label_continuation.txt").replace(b"  03062424-0003", b"        24-0003")
    # then its text still continues the label
    _headers, (credit, _fee, _vat) = items_of(content)
    assert credit.remittance_info == "VIREMENT RECU  FACTURE N INV-2024-0003 PAUL MARTIN"


@pytest.mark.django_db
def test_cfonb_invoice_number_cut_by_the_label_is_matched(world):
    # given the factoring company's account, configured for Acme
    headers, _entries = items_of(sample("cfonb120_factor_label_continuation.txt"))
    acme_account(world, headers[0].account_iban)
    # when the statement is imported
    result = statement_import(source=sample("cfonb120_factor_label_continuation.txt"), filename="factor.txt")
    # then the credit pays the invoice its label names across the two records
    assert result.created == 3 and result.warnings == []
    world.martin_inv.refresh_from_db()
    assert world.martin_inv.status == Invoice.Status.PAID
    assert BankTransaction.objects.get(direction="CRDT").status == BankTransaction.Status.MATCHED


# --- LCC / LC2 and LIB (Société Générale) ---


def test_cfonb_lcc_cut_at_70_characters_is_continued_by_lc2_and_lib_is_not_repeated():
    # given Société Générale's layout: the remittance information in LIB and again in LCC, whose
    # 70 characters end inside an invoice number that LC2 finishes
    _headers, (credit, debit) = items_of(sample("cfonb120_sg_lcc_lc2_cut.txt"))
    # then the number is whole and each text comes once (LIB held only LCC's first 70 characters)
    assert credit.remittance_info == ("VIR MARIE CURIE SARL ME CURIE SARL - REGLEMENT DE VOS FACTURES "
                                      "INV-2024-0001 ET INV-2024-0002 MERCI")
    assert (credit.counterparty_name, credit.end_to_end_id) == ("MARIE CURIE SARL", "MC-VIR-2024-06")
    # identical LIB and LCC: once
    assert debit.remittance_info == "PRLV SEPA TELECOM OUEST FIBRE PRO - Facture: 88120457 - Client: 5512"
    assert (debit.counterparty_name, debit.mandate_reference) == ("TELECOM OUEST", "TO-MANDAT-5512")


def test_cfonb_short_lcc_followed_by_lc2_keeps_a_space():
    # an LCC that ends before its 70 characters was not cut: LC2 is a new piece of text
    content = sample("cfonb120_sg_lcc_lc2_cut.txt").replace(b"INV-2024-0001 ET INV-2024-00  \r\n",
                                                          b"INV-2024-0001 ET    \r\n")
    _headers, (credit, _debit) = items_of(content)
    assert credit.remittance_info.endswith("INV-2024-0001 ET 02 MERCI")


@pytest.mark.django_db
def test_cfonb_invoices_named_across_lcc_and_lc2_are_paid(world):
    headers, _entries = items_of(sample("cfonb120_sg_lcc_lc2_cut.txt"))
    acme_account(world, headers[0].account_iban)
    result = statement_import(source=sample("cfonb120_sg_lcc_lc2_cut.txt"), filename="sg.txt")
    assert result.created == 2 and result.warnings == []
    for inv in (world.curie_1, world.curie_2):
        inv.refresh_from_db()
        assert inv.status == Invoice.Status.PAID


# --- entry numbers that are not unique (LCL) ---


def test_cfonb_identical_movements_under_one_entry_number_are_told_apart():
    # given LCL's layout (blank currency and decimals in 01/07, an account number with a letter)
    # and two card payments of the same amount the same day under the same entry number
    headers, (first, second, credit) = items_of(sample("cfonb120_lcl_repeated_entry_numbers.txt"))
    assert headers[0].account_iban == "FR6130002006150000482137K67"
    assert (headers[0].opening_balance, headers[0].closing_balance) == (Decimal("1560.10"), Decimal("1607.70"))
    assert first.bank_reference == second.bank_reference == "0912377"
    # then the second one is ranked after the first, the others are not
    assert (first.position, second.position, credit.position) == (0, 1, 0)


@pytest.mark.django_db
def test_cfonb_identical_movements_under_one_entry_number_are_both_imported(world):
    # when the statement is imported into its account
    content = sample("cfonb120_lcl_repeated_entry_numbers.txt")
    acme_account(world, "FR6130002006150000482137K67")
    result = statement_import(source=content, filename="lcl.txt", match=False)
    # then both payments are kept, and the balances add up
    assert result.created == 3 and result.duplicates == 0 and result.warnings == []
    assert BankTransaction.objects.filter(amount=Decimal("8.70")).count() == 2
    # and the same movements sent again in another file create nothing
    assert statement_import(source=content + b"\r\n", filename="again.txt", match=False).created == 0


# --- virtual IBANs ---


def _cfonb_record(code: str, rest: str, *, account: str = "00010123456", qualifier: str = "", detail: str = "",
                  amount: str = "", label: str = "", date: str = "040324") -> str:
    head = f"{code}30004    00828EUR2 {account}"
    if code in ("01", "07"):
        line = head.ljust(34) + date + " " * 50 + amount
    elif code == "04":
        line = f"0430004015800828EUR2 {account}05{date}  {date}{label:<31}  0001001  {amount}{rest:<16}"
    else:
        line = f"0530004015800828EUR2 {account}05{date}     {qualifier}{detail}"
    return line.ljust(120)[:120]


@pytest.mark.django_db
def test_cfonb_credit_to_a_virtual_iban_given_in_ibe_pays_that_customer(world):
    # given a French bank's CFONB 120 where the transfer's beneficiary identifier (IBE) is the
    # virtual IBAN the payer typed, on the creditor's real account
    virtual = world.dupont_viban.iban
    lines = [_cfonb_record("01", "", amount="0000000010000{"),
             _cfonb_record("04", "CFONB-VIB-1", label="VIR SEPA RECU", amount="0000000003000{"),
             _cfonb_record("05", "", qualifier="NPY", detail="J DUPONT"),
             _cfonb_record("05", "", qualifier="IBE", detail=virtual),
             _cfonb_record("05", "", qualifier="LCC", detail="VIREMENT"),
             _cfonb_record("07", "", amount="0000000013000{")]
    content = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    # when
    result = statement_import(source=content, filename="vib.txt")
    # then the movement is credited to the virtual IBAN and pays that customer's oldest invoice
    assert result.format == "cfonb120" and result.warnings == []
    movement = BankTransaction.objects.get(entry_reference="CFONB-VIB-1")
    assert movement.credited_iban == virtual and movement.bank_account == world.account
    assert movement.status == BankTransaction.Status.MATCHED
    world.dupont_old.refresh_from_db()
    assert world.dupont_old.status == Invoice.Status.PAID
