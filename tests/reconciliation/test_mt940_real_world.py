"""MT940 as banks outside Germany and the Netherlands write it: each sample is our own file in
the shape of a genuine bank's (names, accounts and amounts changed)."""
from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from reconciliation.parsers import Entry, StatementHeader, detect, parse
from tests.reconciliation.conftest import sample


def mt940_items(content: bytes) -> tuple[list[StatementHeader], list[Entry]]:
    items = list(parse(io.BytesIO(content), detect(content)))
    headers = list({id(i): i for i in items if isinstance(i, StatementHeader)}.values())  # each comes twice
    return headers, [i for i in items if isinstance(i, Entry)]


def test_pko_bp_tilde_subfields_in_iso_8859_2():
    # PKO BP: ":25:/PL…", the German sub-fields with "~" (title ~20-~25, name ~32-~33 cut at 27
    # characters, IBAN ~38), 0xFF in the empty ones, Polish letters in ISO 8859-2
    content = sample("mt940_pl_pkobp_tilde_subfields.sta")
    headers, (credit, fee) = mt940_items(content)
    assert headers[0].account_iban == "PL60102010260000123456789012"
    assert headers[0].closing_balance == Decimal("14344.25")
    assert (credit.amount, credit.direction, credit.bank_reference) == (Decimal("1845.00"), "CRDT", "6460500500001234")
    assert credit.counterparty_name == "PRZEDSIĘBIORSTWO ŚLĄSKIE SP. Z O.O. KATOWICE"
    assert credit.counterparty_iban == "PL61109010140000071219812874"
    assert credit.remittance_info == "FAKTURA FV/2024/03/0117 ZA SERWIS"
    assert (fee.direction, fee.counterparty_name, fee.counterparty_iban, fee.remittance_info) == (
        "DBIT", "", "", "OPŁATA ZA PRZELEW")
    # the same file in Windows-1250 reads the same
    _, (again, _) = mt940_items(content.decode("iso-8859-2").encode("cp1250"))
    assert again.counterparty_name == credit.counterparty_name


def test_mbank_semicolon_keys_and_lines_longer_than_65():
    # mBank: "Z RACH.: <account>; OD: <payer>; TYT.: <purpose>" (CompanyNet: "na rach.:", "dla:",
    # "tyt.:"), the account without "PL"; CompanyNet's lines are longer than 65 characters and
    # broken between words
    headers, (credit, debit) = mt940_items(sample("mt940_pl_mbank_semicolon_keys.sta"))
    assert headers[0].account_iban == "PL60114010100000543210001001"
    assert credit.counterparty_name == "ZAKŁAD USŁUG KOMUNALNYCH SPÓŁKA Z O.O. UL. ŁĄKOWA 5 97-217 LUBOCHNIA"
    assert (credit.counterparty_iban, credit.remittance_info) == ("PL16105014451000002345271577", "FV 2024/03/0121")
    assert (debit.direction, debit.entry_reference) == ("DBIT", "SP301")
    assert debit.counterparty_name == "Hurtownia Kowalczyk ul.Polna 12 60-198 Poznań"
    assert (debit.counterparty_iban, debit.remittance_info) == ("PL74124062921111001114440900", "fv 88/2024")


def test_bic_before_the_iban_in_the_account():
    # Banque Internationale à Luxembourg (and Raiffeisen Luxembourg): ":25:BIC/IBAN"; "DR4," is a
    # debit with funds code R and no decimals
    headers, (fee, credit) = mt940_items(sample("mt940_lu_bil_bic_before_iban.sta"))
    assert (headers[0].account_iban, headers[0].account_bic) == ("LU780026151160200700", "BILLLULLXXX")
    assert (fee.amount, fee.direction, credit.amount, credit.direction) == (
        Decimal("4"), "DBIT", Decimal("250"), "CRDT")
    assert (credit.counterparty_name, credit.counterparty_iban) == ("BOULANGERIE MULLER SARL", "LU820021234500000987")


def test_austrian_bank_code_and_account():
    # Raiffeisen (Kärnten): ":25://AT<bank code>/<account>/EUR" is the account's IBAN; the
    # statement's own :86: after the closing balance is no transaction text
    headers, (credit,) = mt940_items(sample("mt940_at_raiffeisen_bank_code_account.sta"))
    assert headers[0].account_iban == "AT773936400000412345"
    assert headers[0].account_other_id == "//AT39364/00000412345/EUR"
    assert "INV-2024-0140" in credit.remittance_info and "Einlagensicherung" not in credit.remittance_info


def test_reference_right_after_the_amount_is_no_transaction_type():
    # solarisBank's clients (Penta) write ":61:2403040304D12,50NONREF": no type, then the
    # reference; "NONR" is no type and "EF" no reference
    _, found = mt940_items(sample("mt940_de_solaris_nonref_without_type.sta"))
    assert [(e.amount, e.direction, e.bank_transaction_code, e.entry_reference) for e in found] == [
        (Decimal("12.50"), "DBIT", "", ""), (Decimal("300.00"), "CRDT", "", "")]
    assert (found[1].value_date.isoformat(), found[1].booking_date.isoformat()) == ("2024-03-04", "2024-03-05")


def test_unreadable_available_balance_does_not_refuse_the_file():
    # Oldenburgische Landesbank wrote ":65F:Dnullnull7414,3": the forward balance is not used,
    # the movement is read
    headers, (credit,) = mt940_items(sample("mt940_de_olb_unreadable_available_balance.sta"))
    assert headers[0].account_iban == "DE86280200501426292799"
    assert (credit.amount, credit.end_to_end_id, credit.counterparty_name) == (
        Decimal("230.00"), "INV-2024-0160", "Stadtwerke Beispiel GmbH")


def test_komercijalna_banka_one_slash_line_each():
    # Komercijalna banka (North Macedonia): "/BENM/account", then the name, the references and the
    # purpose on a line each: the name is the second line, not the last piece after a slash
    headers, (fee, credit) = mt940_items(sample("mt940_mk_komercijalna_positional_slash.sta"))
    assert (headers[0].currency, headers[0].closing_balance) == ("MKD", Decimal("60450"))
    assert (fee.direction, fee.counterparty_name, fee.remittance_info) == (
        "DBIT", "KOMERCIJALNA BANKA AD SKOPJE - PROVIZIJA", "Mesecna provizija za mesec 02/2024")
    assert (credit.direction, credit.counterparty_name) == ("CRDT", "GRADEZNIK DOOEL SKOPJE")
    assert credit.remittance_info.startswith("Uplata po faktura INV-2024-0188")


MT942_REPORT = """:20:INTRADAY0001
:25:DE89370400440532013000
:28C:00001/001
:34F:EURD0,
:13D:2611231015+0100
:61:2611231123CR150,00NTRFNONREF//BANKREF0001
:86:166?00GUTSCHRIFT?20EREF+E2E-0001?21SVWZ+RE 2026-0457?32ACME GMBH
:61:2611231123DR20,00NDDTNONREF//BANKREF0002
:86:105?00LASTSCHRIFT?20SVWZ+Beitrag?32VEREIN
:90D:1EUR20,00
:90C:1EUR150,00
-
"""

MT940_DAY = """:20:STMT20261123
:25:DE89370400440532013000
:28C:00321/001
:60F:C261122EUR1000,00
:61:2611231123CR150,00NTRFNONREF//BANKREF0001
:86:166?00GUTSCHRIFT?20EREF+E2E-0001?21SVWZ+RE 2026-0457?32ACME GMBH
:61:2611231123DR20,00NDDTNONREF//BANKREF0002
:86:105?00LASTSCHRIFT?20SVWZ+Beitrag?32VEREIN
:61:2611231123CR75,50NTRFNONREF//BANKREF0003
:86:166?00GUTSCHRIFT?20SVWZ+RE 2026-0458?32BETA KG
:62F:C261123EUR1205,50
-
"""


@pytest.mark.django_db
def test_mt942_intraday_report_then_the_days_mt940_count_each_movement_once():
    from reconciliation.imports import statement_import
    from reconciliation.models import BankStatement, BankTransaction

    # given the German bank's intraday report (MT942: a floor limit and a time, no balances)
    headers, entries = mt940_items(MT942_REPORT.encode("latin-1"))
    assert [h.version for h in headers] == ["MT942"]
    assert headers[0].opening_balance is None and headers[0].currency == "EUR"
    assert headers[0].created_at == dt.datetime(2026, 11, 23, 9, 15, tzinfo=dt.UTC)
    assert [(e.amount, e.direction) for e in entries] == [(Decimal("150.00"), "CRDT"), (Decimal("20.00"), "DBIT")]
    # when the report, then the day's statement, are imported
    report = statement_import(source=MT942_REPORT.encode("latin-1"), filename="vmk.sta", match=False)
    day = statement_import(source=MT940_DAY.encode("latin-1"), filename="sta.sta", match=False)
    # then the report's movements are not counted twice, and the statement's balances add up
    assert (report.created, day.created) == (2, 1)
    assert BankTransaction.objects.count() == 3
    assert [w for w in day.warnings if "balance" in w] == []
    assert set(BankStatement.objects.values_list("version", flat=True)) == {"MT942", "MT940"}
