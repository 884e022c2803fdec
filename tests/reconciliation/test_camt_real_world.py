"""camt variants found in genuine bank files published with other libraries' tests (Finnish,
Swiss and German banks), reproduced in our own samples with made-up names, accounts and amounts."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest

from reconciliation.parsers import Entry, StatementHeader, StatementParseError, detect, parse
from tests.reconciliation.conftest import sample


def items_of(content: bytes) -> tuple[list[StatementHeader], list[Entry]]:
    found = list(parse(io.BytesIO(content), detect(content)))
    headers = list({id(i): i for i in found if isinstance(i, StatementHeader)}.values())
    return headers, [i for i in found if isinstance(i, Entry)]


def booked_total(found: list[Entry]) -> Decimal:
    return sum((e.amount if e.direction == "CRDT" else -e.amount for e in found), Decimal("0"))


def test_camt054_finnish_bank_several_creditor_references_padded_lines_and_payer_currency():
    # given a Finnish camt.054: one transfer paying two invoices, one Strd and one RF reference
    # each; a transfer from Sweden whose Ustrd lines are padded to fixed columns, booked in EUR
    # (TxAmt) with the amount instructed in SEK beside it (InstdAmt)
    _headers, (two_invoices, from_sweden) = items_of(sample("camt054_v02_fi_handelsbanken_several_references.xml"))
    # then the first reference is the structured one and the second is not lost: it is in the
    # text, joined like the first
    assert two_invoices.structured_reference == "RF0720240451"
    assert "RF7720240452" in two_invoices.remittance_info.split()
    assert two_invoices.counterparty_iban == "FI5542345670000081"
    # and the column padding is gone, the payer's currency amount kept aside
    assert from_sweden.remittance_info == (
        "3131090Q70233000 PANO/INSATTN EUR 320,40 KURSSI/KURS 11,40000MAKSU/UPPDR. SEK 3652,56 "
        "INVOICE INV-2024-0453")
    assert (from_sweden.amount, from_sweden.currency) == (Decimal("320.40"), "EUR")
    assert (from_sweden.extra["original_amount"], from_sweden.extra["original_currency"]) == (
        Decimal("3652.56"), "SEK")


def test_camt053_swiss_batch_whose_details_do_not_add_up_is_kept_whole():
    # given a Swiss (Raiffeisen-style) camt.053.001.04: a salary batch of three booked as one
    # entry of 8,500.00 but detailing only two transfers (7,300.00), a collective credit whose
    # two details add up, an entry text broken into lines, no Acct/Ccy
    headers, found = items_of(sample("camt053_v04_ch_raiffeisen_partial_batch.xml"))
    salaries, first, second = found
    # then the partial batch stays one transaction, at the amount booked, with every text
    assert (salaries.amount, salaries.direction, salaries.currency) == (Decimal("8500.00"), "DBIT", "CHF")
    assert salaries.batch_reference == "241021540200000000037781450000"
    assert salaries.remittance_info == "E-banking Sammelauftrag Lohnzahlungen April 2024"
    # and the batch that adds up is split, each credit with its payer and text
    assert [(e.amount, e.counterparty_name, e.position) for e in (first, second)] == [
        (Decimal("600.00"), "Pia Rutz", 0), (Decimal("285.50"), "Luca Bernasconi", 1)]
    assert first.remittance_info == "Rechnung 2024-0301 Sammelgutschrift"
    # so the movements still explain the balances
    statement = headers[0]
    assert statement.opening_balance + booked_total(found) == statement.closing_balance


def test_camt_batch_details_in_another_currency_are_not_booked_as_such():
    # given a batch entry in CHF whose details only give EUR amounts
    content = sample("camt053_v04_ch_raiffeisen_partial_batch.xml").replace(
        b'<Amt Ccy="CHF">600.00</Amt>', b'<Amt Ccy="EUR">620.00</Amt>').replace(
        b'<Amt Ccy="CHF">285.50</Amt>', b'<Amt Ccy="EUR">295.00</Amt>')
    _headers, (_salaries, collective) = items_of(content)
    # then the entry is kept whole, in the account's currency
    assert (collective.amount, collective.currency) == (Decimal("885.50"), "CHF")
    assert "Pia Rutz" not in collective.remittance_info  # names are parties, not texts
    assert "Rechnung 2024-0301" in collective.remittance_info and "Rechnung 2024-0302" in collective.remittance_info


def test_camt_batch_detail_with_a_non_finite_amount_is_still_an_error():
    content = sample("camt053_v04_ch_raiffeisen_partial_batch.xml").replace(
        b'<Amt Ccy="CHF">600.00</Amt>', b'<Amt Ccy="CHF">NaN</Amt>')
    with pytest.raises(StatementParseError, match="invalid amount"):
        items_of(content)


def test_camt052_german_returns_by_dk_code_and_the_customer_as_counterparty():
    # given a German savings bank's camt.052 (DK format): no ISO domain codes, only proprietary
    # "NRTI+109+…" (GVC 109, returned direct debit); both parties of the original collection
    # named, the debtor being our customer and the creditor our own account; one return
    # without RtrInf
    headers, (with_reason, without_reason, transfer) = items_of(sample("camt052_v02_de_sparkasse_dk_returns.xml"))
    assert headers[0].account_iban == "DE53666500850008412345"
    # then both are returns, the one with RtrInf with its reason
    assert (with_reason.is_reversal, with_reason.reason_code) == (True, "MD06")
    assert (without_reason.is_reversal, without_reason.reason_code) == (True, "")
    assert (without_reason.end_to_end_id, without_reason.mandate_reference) == ("E2E-DD-0410-HAAS", "ENC-7-HAAS02")
    # and the counterparty is the customer, not us
    assert (with_reason.counterparty_name, with_reason.counterparty_iban) == ("Sabine Vogt", "DE62666500850008499871")
    assert (without_reason.counterparty_name, without_reason.counterparty_iban) == (
        "Jonas Haas", "DE08600501017405512345")
    # while an ordinary transfer (GVC 166) is no return
    assert transfer.is_reversal is False
    assert (transfer.counterparty_name, transfer.direction) == ("Jonas Haas", "CRDT")
    assert headers[0].opening_balance + booked_total([with_reason, without_reason, transfer]) == \
        headers[0].closing_balance


@pytest.mark.django_db
def test_camt_virtual_iban_given_as_the_creditor_accounts_other_id_pays_that_customer(world):
    from reconciliation.imports import statement_import
    from reconciliation.models import BankTransaction
    from tests.reconciliation.builders import camt053

    # given a bank that writes the credited virtual IBAN as an "other" identifier
    virtual = world.dupont_viban.iban
    content = camt053(world.account.iban, [{"amount": "300.00", "ref": "OTHR-1", "text": "virement",
                                            "name": "J Dupont", "credited": virtual}])
    iban_form = f"<CdtrAcct><Id><IBAN>{virtual}</IBAN></Id></CdtrAcct>".encode()
    assert iban_form in content
    content = content.replace(iban_form, f"<CdtrAcct><Id><Othr><Id>{virtual}</Id></Othr></Id></CdtrAcct>".encode())
    # when
    statement_import(source=content, filename="othr.xml")
    # then
    movement = BankTransaction.objects.get(bank_reference="OTHR-1")
    assert movement.credited_iban == virtual and movement.status == BankTransaction.Status.MATCHED
    world.dupont_old.refresh_from_db()
    assert world.dupont_old.status == "paid"
