from __future__ import annotations

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
    content = sample("camt053_v02_bnp.xml").replace(b"camt.053.001.02", b"camt.053.001.13")
    with pytest.raises(UnsupportedFormat, match="001.02 to 001.08"):
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
