from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from reconciliation.models import BankAccount
from reconciliation.parsers import Entry, StatementHeader, StatementParseError, UnsupportedFormat, detect, parse
from tests.reconciliation.conftest import sample


def entries(content: bytes) -> list[Entry]:
    fmt = detect(content)
    return [item for item in parse(io.BytesIO(content), fmt) if isinstance(item, Entry)]


@pytest.mark.parametrize("version", ["02", "03", "04", "05", "06", "07", "08"])
def test_camt053_every_supported_version(version):
    content = sample("camt053_v02_bnp.xml").replace(b"camt.053.001.02", f"camt.053.001.{version}".encode())
    found = entries(content)
    assert len(found) == 8
    assert sum(e.amount for e in found if e.direction == "CRDT") == Decimal("1199.99")


def test_camt_unsupported_version_and_other_xml():
    # 001.09 to 001.13 changed nothing that is read here: accepted; a future one is refused
    content = sample("camt053_v02_bnp.xml").replace(b"camt.053.001.02", b"camt.053.001.13")
    assert len(entries(content)) == 8
    content = sample("camt053_v02_bnp.xml").replace(b"camt.053.001.02", b"camt.053.001.14")
    with pytest.raises(UnsupportedFormat, match="001.02 to 001.13"):
        entries(content)
    with pytest.raises(UnsupportedFormat):
        detect(b"<?xml version='1.0'?><invoice/>")


def test_camt_entry_without_amount_names_the_entry():
    content = sample("camt053_v02_bnp.xml").replace(b'<Amt Ccy="EUR">99.99</Amt>', b"")
    with pytest.raises(StatementParseError, match="entry 4"):
        entries(content)


def test_camt054_notification_header_has_no_balances():
    content = sample("camt054_v04_returns.xml")
    headers = [i for i in parse(io.BytesIO(content), "camt.054") if isinstance(i, StatementHeader)]
    assert headers[0].opening_balance is None and headers[0].account_iban == "FR7630004008280001012345691"


def test_mt940_and_cfonb_malformed():
    broken = sample("mt940_nl_ing.sta").replace(b":61:240304C60,00", b":61:2403XXC60,00")
    with pytest.raises(StatementParseError):
        entries(broken)
    cfonb = sample("cfonb120_lcl.txt").splitlines()
    cfonb[1] = cfonb[1][:60]  # a truncated movement record
    with pytest.raises(StatementParseError, match="line 2"):
        entries(b"\r\n".join(cfonb) + b"\r\n")


def test_cfonb_without_newlines_is_read_too():
    records = sample("cfonb120_lcl.txt").replace(b"\r\n", b"")
    assert detect(records) == "cfonb120"
    assert len(entries(records)) == 3


@pytest.mark.django_db
def test_overpayment_spread_to_other_open_invoices(world):
    from collections_app.models import Invoice
    from reconciliation.imports import statement_import
    from tests.reconciliation.builders import camt053

    BankAccount.objects.filter(pk=world.account.pk).update(overpayment=BankAccount.Overpayment.SPREAD)
    statement_import(source=camt053(world.account.account_id, [
        {"amount": "230.00", "ref": "SPREAD-1", "text": "INV-2024-0001", "name": "Curie"}]))
    world.curie_1.refresh_from_db()
    world.curie_2.refresh_from_db()
    world.curie.refresh_from_db()
    assert world.curie_1.status == Invoice.Status.PAID and world.curie_2.status == Invoice.Status.PAID
    assert world.curie.credit_balance == Decimal("30.00")


def test_dtd_hidden_behind_padding_is_refused_too():
    bomb = sample("xml_bomb_camt053.xml")
    padded = bomb.replace(b"<!DOCTYPE", b"<!--" + b" " * 70000 + b"-->\n<!DOCTYPE", 1)
    with pytest.raises(StatementParseError):
        entries(padded)
    with pytest.raises(StatementParseError):
        list(parse(io.BytesIO(padded), "camt.053"))
    # text that merely mentions a DOCTYPE inside the document is no reason to refuse it
    harmless = sample("camt053_v02_bnp.xml").replace(b"<Ustrd>merci</Ustrd>",
                                                     b"<Ustrd>&lt;!DOCTYPE merci</Ustrd>")
    assert len(entries(harmless)) == 8


def test_cfonb_with_trimmed_lines_and_a_dos_end_of_file_mark():
    # given a Crédit Agricole-style export: CRLF, trailing spaces trimmed, Ctrl-Z at the end,
    # a remittance text split over two 05 records, two accounts in one file
    content = sample("cfonb120_ca_ctrlz.txt")
    # when
    items = list(parse(io.BytesIO(content), detect(content)))
    # then
    headers = list({id(i): i for i in items if isinstance(i, StatementHeader)}.values())  # each comes twice
    assert [h.account_iban for h in headers] == ["FR7630003012340002012345670", "FR7630003012340002012345767"]
    assert [h.closing_balance for h in headers] == [Decimal("12469.00"), Decimal("-25.00")]
    credit, fee = [i for i in items if isinstance(i, Entry)]
    assert (credit.amount, credit.direction, credit.counterparty_name) == (Decimal("1234.55"), "CRDT", "M DUPONT JEAN")
    assert "FAC-2024-0 0123" in credit.remittance_info
    assert (fee.amount, fee.direction) == (Decimal("25.00"), "DBIT")


def test_mt940_inside_a_full_swift_envelope():
    # {3:{108:…}} nests a block and the {5:{CHK:…}} trailer follows "-}" on the same line
    content = sample("mt940_de_swift_envelope.sta")
    credit, returned = entries(content)
    assert (credit.amount, credit.end_to_end_id, credit.counterparty_name) == (
        Decimal("100.00"), "INV-2024-0001", "Max Mustermann")
    assert returned.is_reversal and returned.reason_code == "AC04" and returned.end_to_end_id == "E2E-DD-0005"
    final = [i for i in parse(io.BytesIO(content), "mt940") if isinstance(i, StatementHeader)][-1]
    assert final.closing_balance == Decimal("1284.56")


def test_camt_prefixed_namespace_latin1_amounts_in_details_and_pending_entries():
    found = entries(sample("camt053_v04_prefixed_latin1.xml"))
    assert [(e.amount, e.counterparty_name, e.booked) for e in found] == [
        (Decimal("100.00"), "Société Générale Client", True),
        (Decimal("60.00"), "A. Müller", True),  # a batch whose amounts are only instructed amounts
        (Decimal("90.00"), "B. François", True),
        (Decimal("500.00"), "", False),  # PDNG: not on the account yet
    ]
    assert found[1].batch_reference == found[2].batch_reference == "LOT-0304"


def test_mt940_lines_cut_at_65_characters_and_statement_information():
    # given ING's format: :86: cut every 65 characters (inside "/BENM/", "/CSID/" and words),
    # a preamble before :20:, the statement's own :86: after its balances, a "-XXX" trailer
    returned, credit = entries(sample("mt940_nl_ing_wrapped.sta"))
    # then keys and words cut by the line length are whole again
    assert returned.end_to_end_id == "E2E-DD-0004-RET" and returned.is_reversal and returned.reason_code == "MD06"
    assert returned.counterparty_name == "A. de Vries Installatietechniek"
    assert returned.remittance_info == "terugboeking INV-2024-0050"
    assert credit.counterparty_name == "Bakkerij van der Heijden"
    assert credit.counterparty_iban == "NL91ABNA0417164300"
    # and the statement's information to the account owner is not the last transaction's text
    assert credit.remittance_info == "Factuur INV-2024-0051 en INV-2024-0052 dank u"


# --- camt and CFONB real-world variants ---


def items_of(content: bytes) -> tuple[list[StatementHeader], list[Entry]]:
    found = list(parse(io.BytesIO(content), detect(content)))
    headers = list({id(i): i for i in found if isinstance(i, StatementHeader)}.values())
    return headers, [i for i in found if isinstance(i, Entry)]


def test_camt053_v11_iban_in_othr_entries_without_dates_and_balances_in_any_order():
    # given a Baltic-style camt.053.001.11: the IBAN in Acct/Id/Othr/Id, entries with neither
    # booking nor value date, balances without CdtDbtInd, OPAV and CLBD listed before OPBD
    headers, (credit, fee) = items_of(sample("camt053_v11_lt_othr_iban_no_dates.xml"))
    # then
    first, second = headers
    assert first.version == "camt.053.001.11" and first.account_iban == "LT737300010012345678"
    assert (first.opening_balance, first.closing_balance) == (Decimal("2000.00"), Decimal("2150.30"))
    assert credit.booking_date == fee.booking_date == dt.date(2024, 3, 7)  # the statement's day
    assert (credit.amount, credit.direction, fee.amount, fee.direction) == (
        Decimal("150.50"), "CRDT", Decimal("0.20"), "DBIT")
    # an Othr/Id that is no IBAN stays an other id; a previous closing balance opens
    assert (second.account_iban, second.account_other_id) == ("", "LTB-CLEARING-2")
    assert (second.opening_balance, second.closing_balance) == (Decimal("-10.00"), Decimal("-10.00"))


def test_camt053_several_documents_in_one_file():
    # given a download of two days: two XML documents one after the other, and a Ctrl-Z
    headers, found = items_of(sample("camt053_v02_nl_two_days_concatenated.xml"))
    # then both statements are read, in order
    assert [(h.statement_id, h.opening_balance, h.closing_balance) for h in headers] == [
        ("NLB-2024-03-04", Decimal("100.00"), Decimal("220.00")),
        ("NLB-2024-03-05", Decimal("220.00"), Decimal("300.50"))]
    assert [h.index for h in headers] == [0, 1]
    assert [(e.amount, e.counterparty_name, e.booking_date) for e in found] == [
        (Decimal("120.00"), "Bakkerij Jansen", dt.date(2024, 3, 4)),
        (Decimal("80.50"), "Fietsen de Boer", dt.date(2024, 3, 5))]
    # and a second document that is not a statement is a clear error, not a silent loss
    bad = sample("camt053_v02_nl_two_days_concatenated.xml") + (
        b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"/>')
    with pytest.raises(StatementParseError, match="further XML document"):
        items_of(bad)


def test_camt054_swiss_envelope_qr_reference_unsplittable_batch_and_foreign_amount():
    # given a Swiss camt.054 in a BizMsgEnvlp: a QR reference in groups with ?REJECT?/?ERROR?
    # processing codes, a batch whose items carry no amounts, and a payment instructed in
    # EUR on a CHF account by an ultimate debtor only
    content = sample("camt054_v08_ch_envelope_qrr_batch.xml")
    assert detect(content) == "camt.054"
    headers, (qr, batch, foreign) = items_of(content)
    assert headers[0].account_iban == "CH7609000000123456789"
    # then
    assert qr.structured_reference == "210000000003139471430009017"
    assert qr.remittance_info == "Rechnung 2024-0110 GUTSCHRIFT QR-RECHNUNG"
    assert (qr.counterparty_name, qr.counterparty_iban) == ("Anna Keller", "CH2809000000987654321")
    # the batch cannot be split: kept whole, with every item's text
    assert (batch.amount, batch.batch_reference) == (Decimal("700.00"), "CHB-A-0002")
    assert "Rechnung 2024-0111" in batch.remittance_info and "Rechnung 2024-0112" in batch.remittance_info
    # the amount booked on the account, not the one instructed in another currency
    assert (foreign.amount, foreign.currency) == (Decimal("95.40"), "CHF")
    assert (foreign.extra["original_amount"], foreign.extra["original_currency"]) == (Decimal("100.00"), "EUR")
    assert foreign.counterparty_name == "Dupont Holding SA"
    assert foreign.structured_reference == "RF18539007547034"
    assert foreign.booking_date == dt.date(2024, 3, 8)  # the date the bank wrote, in its zone


def test_camt_in_utf16():
    content = sample("camt054_v08_ch_envelope_qrr_batch.xml").replace(b'encoding="UTF-8"', b'encoding="UTF-16"')
    content = content.decode("utf-8").encode("utf-16")
    assert detect(content) == "camt.054"
    _headers, found = items_of(content)
    assert [e.amount for e in found] == [Decimal("250.00"), Decimal("700.00"), Decimal("95.40")]


def test_camt_non_finite_amount_is_a_parse_error():
    content = sample("camt054_v08_ch_envelope_qrr_batch.xml").replace(b">250.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>",
                                                                      b">NaN</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>")
    with pytest.raises(StatementParseError, match="invalid amount"):
        items_of(content)


def test_cfonb_lines_padded_beyond_120_and_counterparty_by_direction():
    # given records padded with spaces to 128 characters, a credit naming both the payer and
    # us (NBE), a direct debit naming us as payer (NPY), a returned direct debit
    headers, (credit, debit, returned) = items_of(sample("cfonb120_sg_qualifiers_padded.txt"))
    assert headers[0].closing_balance == Decimal("1144.10")
    # then the counterparty is the payer of a credit, with the IBAN of its IPY record
    assert (credit.counterparty_name, credit.counterparty_iban) == ("SARL LES TILLEULS", "FR7630004008280001012345691")
    assert (credit.extra["original_amount"], credit.extra["original_currency"]) == (Decimal("275.00"), "USD")
    # the beneficiary of a debit, never ourselves; the RUM record's second half is the sequence type
    assert debit.counterparty_name == "TELECOM OUEST" and debit.counterparty_iban == ""
    assert (debit.mandate_reference, debit.extra["sequence_type"]) == ("TO-2024-77", "RCUR")
    # the payer whose direct debit came back
    assert returned.is_reversal and returned.counterparty_name == "JEAN MARTIN"
    assert returned.mandate_reference == "ENC-5-AAAAAA" and returned.end_to_end_id == "E2E-DD-0201"


def test_cfonb_without_newlines_but_a_final_one_several_accounts_days_and_decimals():
    content = sample("cfonb120_bnp_currencies_one_line.txt")
    assert detect(content) == "cfonb120"
    headers, found = items_of(content)
    assert [(h.currency, h.from_date, h.opening_balance, h.closing_balance) for h in headers] == [
        ("EUR", dt.date(2024, 3, 4), Decimal("500.00"), Decimal("510.00")),
        ("EUR", dt.date(2024, 3, 5), Decimal("510.00"), Decimal("508.75")),
        ("JPY", dt.date(2024, 3, 4), Decimal("120000"), Decimal("135000")),
        ("TND", dt.date(2024, 3, 4), Decimal("1000.500"), Decimal("988.155")),
    ]
    assert [(e.amount, e.direction, e.currency) for e in found] == [
        (Decimal("10.00"), "CRDT", "EUR"), (Decimal("1.25"), "DBIT", "EUR"),
        (Decimal("15000"), "CRDT", "JPY"), (Decimal("12.345"), "DBIT", "TND")]
    # glued records whose trailing spaces were trimmed cannot be cut apart: a clear error
    with pytest.raises(StatementParseError):
        items_of(content.replace(b" " * 16 + b"0430004", b"0430004"))


# --- MT940 real-world dialects ---


def mt940_items(content: bytes) -> tuple[list[StatementHeader], list[Entry]]:
    items = list(parse(io.BytesIO(content), detect(content)))
    headers = list({id(i): i for i in items if isinstance(i, StatementHeader)}.values())  # each comes twice
    return headers, [i for i in items if isinstance(i, Entry)]


def test_mt940_reversal_marks_intermediate_balances_and_a_year_end():
    # RC is the reversal of a credit, a debit; RD the reversal of a debit, a credit (Sparkasse
    # "Storno"), here in a statement cut in two messages by :62M:/:60M:, CRLF, Windows-1252
    headers, found = mt940_items(sample("mt940_de_sparkasse_storno_intermediate.sta"))
    assert [(h.sequence_number, h.opening_balance, h.closing_balance) for h in headers] == [
        ("00012/001", Decimal("2500.00"), Decimal("2500.00")), ("00012/002", Decimal("2500.00"), Decimal("2550.00"))]
    assert [(e.amount, e.direction, e.is_reversal) for e in found] == [
        (Decimal("150.00"), "CRDT", False), (Decimal("150.00"), "DBIT", True),
        (Decimal("80.00"), "CRDT", True), (Decimal("30.00"), "DBIT", False)]
    # booked on 2 January for a value date of 31 December
    assert (found[0].value_date.isoformat(), found[0].booking_date.isoformat()) == ("2023-12-31", "2024-01-02")


def test_mt940_asn_counter_iban_in_the_reference_and_blank_entry_date():
    # ASN writes the 18-character counter-IBAN where the 16-character reference goes and the
    # name on the :61:'s second line; four spaces stand for the entry date
    headers, (credit, debit) = mt940_items(sample("mt940_nl_asn_envelope_iban_reference.sta"))
    assert [h.closing_balance for h in headers] == [Decimal("1275.00"), Decimal("1255.00")]
    assert (credit.amount, credit.direction, credit.counterparty_iban) == (Decimal("75.00"), "CRDT", "NL67INGB0006543210")
    assert credit.booking_date == credit.value_date and "Factuur INV-2024-0007" in credit.remittance_info
    assert (debit.amount, debit.direction, debit.counterparty_iban) == (Decimal("20.00"), "DBIT", "NL84ABNA0517283946")


def test_mt940_space_before_the_transaction_type_and_kref():
    # Deutsche Bank and Commerzbank write "D12,35 NRTIKREF+": the space must not eat the type,
    # and "KREF+" means the customer reference is the :86:'s KREF
    (returned,) = entries(sample("mt940_de_deutschebank_space_before_type.sta"))
    assert (returned.amount, returned.direction, returned.is_reversal, returned.reason_code) == (
        Decimal("12.35"), "DBIT", True, "AC04")
    assert (returned.entry_reference, returned.bank_reference) == ("SEPA-DA20240301-0001", "2406401234567890")
    assert (returned.end_to_end_id, returned.mandate_reference) == ("ENC-DD-0107", "MD-2023-17")


def test_mt940_transactions_without_type_are_not_merged():
    # Zenith Bank leaves the statement number blank (":28C: /1") and writes no transaction type:
    # every :61: is still its own entry
    headers, found = mt940_items(sample("mt940_ng_zenith_no_transaction_type.sta"))
    assert (headers[0].currency, headers[0].closing_balance) == ("NGN", Decimal("629462.50"))
    assert [(e.amount, e.direction, e.bank_reference) for e in found] == [
        (Decimal("250000.00"), "CRDT", "20811930021"), (Decimal("120000.00"), "DBIT", "20811930555"),
        (Decimal("537.50"), "DBIT", "20811931002")]
    assert "INV-2024-0061" in found[0].remittance_info


def test_mt940_dfue_ns_fields_and_a_balance_without_currency():
    # old German (DFÜ) exports: :NS: instead of :86: (01-14 purpose, 15-16 name) and a closing
    # balance without currency, which must not be read as currency "380" and 0,00
    headers, (credit, rent) = mt940_items(sample("mt940_de_dfue_ns_fields.sta"))
    assert (headers[0].currency, headers[0].closing_balance) == ("EUR", Decimal("3800.00"))
    assert (credit.counterparty_name, credit.remittance_info) == ("Müller Haustechnik GmbH", "INV-2024-0070 Zahlung Müller")
    assert (rent.direction, rent.counterparty_name, rent.remittance_info) == ("DBIT", "Immobilien Kranz", "Miete März")


def test_mt940_rabobank_counter_iban_on_the_second_line_and_a_full_first_line():
    # the first :86: line holds 61 characters after the tag: cut there, it is joined without a
    # space; Rabobank gives the counter-IBAN on the :61:'s second line only
    (credit,) = entries(sample("mt940_nl_rabobank_structured.sta"))
    assert credit.counterparty_name == "Installatiebedrijf van den Berg"
    assert credit.counterparty_iban == "NL84ABNA0517283946"
    assert (credit.end_to_end_id, credit.remittance_info) == ("ENC-2024-0088", "Factuur INV-2024-0088")


def test_mt940_errors_name_the_line():
    # an unreadable :61: and a :61: pasted after the last closing balance (no :20: of its own,
    # which mt-940 would silently add to the closed statement) are refused with their line
    broken = sample("mt940_nl_ing.sta").replace(b":61:240304C60,00", b":61:2403XXC60,00")
    with pytest.raises(StatementParseError, match=r"line 5\b"):
        entries(broken)
    stray = sample("mt940_nl_abnamro.sta") + b":61:240306C10,00NTRFNONREF\n:86:stray\n"
    with pytest.raises(StatementParseError, match=r"line 8\b"):
        entries(stray)
