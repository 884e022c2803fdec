from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from collections_app import services
from connectors.accounting import FEC_COLUMNS, accounting_entries, fec, fec_filename, journal_csv
from tests.factories import make_invoice, make_request


def money_movements(customer):
    request = make_request(customer, amount="120.00")
    card = services.payment_create(customer=customer, method="card", amount="120.00", payment_request=request)
    services.payment_record_success(payment=card)
    refund = services.refund_create(payment=card, amount="20.00", reason="geste commercial")
    services.refund_record_success(refund=refund)
    other = make_request(customer, amount="80.00")
    debit = services.payment_create(customer=customer, method="sepa_dd", amount="80.00", payment_request=other)
    services.payment_record_success(payment=debit)
    services.payment_reverse(payment=debit, reason_code="AM04", reason_message="Insufficient funds")
    invoice = make_invoice(customer, amount="15.50")
    services.invoice_write_off(invoice=invoice)


def parse_fec(data: bytes) -> list[list[str]]:
    text = data.decode("iso8859_15")
    assert "\r\n" in text
    return [line.split("\t") for line in text.rstrip("\r\n").split("\r\n")]


@pytest.mark.django_db
def test_fec_has_the_official_columns_and_every_entry_balances(customer):
    customer.creditor.registration_number = "123 456 789"
    customer.creditor.save()
    money_movements(customer)
    today = timezone.localdate()

    entries = accounting_entries(creditor=customer.creditor, start=today.replace(day=1), end=today)
    rows = parse_fec(fec(entries))

    assert rows[0] == ["JournalCode", "JournalLib", "EcritureNum", "EcritureDate", "CompteNum", "CompteLib",
                       "CompAuxNum", "CompAuxLib", "PieceRef", "PieceDate", "EcritureLib", "Debit", "Credit",
                       "EcritureLet", "DateLet", "ValidDate", "Montantdevise", "Idevise"] == FEC_COLUMNS
    body = rows[1:]
    assert all(len(row) == 18 for row in body)
    totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in body:
        totals[row[2]][0] += Decimal(row[11].replace(",", "."))
        totals[row[2]][1] += Decimal(row[12].replace(",", "."))
        assert row[3] == today.strftime("%Y%m%d") and len(row[3]) == 8
    assert len(totals) == 5  # two payments, one refund, one reversal, one write-off
    assert all(debit == credit for debit, credit in totals.values())
    by_kind = {(e.kind, e.lines[0].account[0], e.lines[1].account[0]): e.lines[0].debit for e in entries}
    assert by_kind == {
        ("payment", "512000", "411000"): Decimal("80.00"),  # the later one wins the key; both are there
        ("refund", "411000", "512000"): Decimal("20.00"),
        ("reversal", "411000", "512000"): Decimal("80.00"),
        ("write_off", "654000", "411000"): Decimal("15.50"),
    }
    assert sorted(e.lines[0].debit for e in entries if e.kind == "payment") == [Decimal("80.00"), Decimal("120.00")]
    customer_lines = [row for row in body if row[4] == "411000"]
    assert {row[6] for row in customer_lines} == {customer.external_ref}
    assert fec_filename(customer.creditor, today) == f"123456789FEC{today:%Y%m%d}.txt"


@pytest.mark.django_db
def test_journal_csv_and_period_bounds(customer):
    money_movements(customer)
    today = timezone.localdate()
    entries = accounting_entries(creditor=customer.creditor, start=today, end=today)
    rows = list(csv.DictReader(io.StringIO(journal_csv(entries).decode("utf-8-sig"))))
    assert len(rows) == 10
    assert sum(Decimal(r["debit"]) for r in rows) == sum(Decimal(r["credit"]) for r in rows) == Decimal("315.50")
    yesterday = today - dt.timedelta(days=1)
    assert accounting_entries(creditor=customer.creditor, start=yesterday, end=yesterday) == []
    # a customer name from an ERP file that a spreadsheet would run as a formula stays text
    customer.name = '=HYPERLINK("http://evil.example","Payer")'
    customer.save(update_fields=["name"])
    rows = list(csv.DictReader(io.StringIO(journal_csv(accounting_entries(
        creditor=customer.creditor, start=today, end=today)).decode("utf-8-sig"))))
    assert {r["customer_name"] for r in rows if r["customer_name"]} == {"'" + customer.name}
    assert len(accounting_entries(creditor=customer.creditor, start=yesterday, end=today)) == 5


@pytest.mark.django_db
def test_accounting_export_command(customer, tmp_path, capsys):
    import json

    from django.core.management import call_command

    money_movements(customer)
    today = timezone.localdate()
    call_command("accounting_export", "--creditor", str(customer.creditor.pk), "--start", today.isoformat(),
                 "--end", today.isoformat(), "--format", "journal", "--output-dir", str(tmp_path), "--json")
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["lines"] == 10
    assert Path(data["path"]).read_bytes().decode("utf-8-sig").startswith("date,journal,entry,kind,account")


@pytest.mark.django_db
def test_the_creditors_own_accounts_and_journals(customer, admin_client, settings):
    settings.LANGUAGE_CODE = "en"
    # given a creditor whose chart books card payments to the processor's account and prefixes
    # customer auxiliary accounts, saved through the admin
    response = admin_client.post("/admin/connectors/accountingsettings/add/", {
        "creditor": customer.creditor.pk, "bank_journal": "BNP", "bank_journal_label": "BNP Paribas",
        "misc_journal": "OD", "misc_journal_label": "Opérations diverses", "bank_account": "512100",
        "bank_account_label": "BNP Paribas", "card_account": "467100", "card_account_label": "Stripe",
        "customer_account": "411000", "customer_account_label": "Clients", "auxiliary_prefix": "C",
        "write_off_account": "654000", "write_off_account_label": "Créances irrécouvrables"})
    assert response.status_code == 302, response.content.decode()[:2000]
    money_movements(customer)
    today = timezone.localdate()
    # when
    entries = accounting_entries(creditor=customer.creditor, start=today, end=today)
    rows = parse_fec(fec(entries))[1:]
    # then
    accounts = {(e.kind, e.lines[0].account[0], e.lines[1].account[0]) for e in entries}
    assert accounts == {("payment", "467100", "411000"), ("payment", "512100", "411000"),
                        ("refund", "411000", "467100"), ("reversal", "411000", "512100"),
                        ("write_off", "654000", "411000")}
    assert {row[0] for row in rows} == {"BNP", "OD"}
    assert {(row[4], row[5]) for row in rows if row[6]} == {("411000", "Clients")}
    assert {row[6] for row in rows if row[6]} == {f"C{customer.external_ref}"}
    assert all(row[6] == "" for row in rows if row[4] != "411000")
    # a bad account number is refused field by field
    response = admin_client.post(f"/admin/connectors/accountingsettings/{customer.creditor.accounting_settings.pk}"
                                 "/change/", {"creditor": customer.creditor.pk, "bank_journal": "BQ",
                                              "bank_account": "51 2", "customer_account": "411000",
                                              "write_off_account": "654000", "misc_journal": "OD"})
    assert response.status_code == 200
    assert "An account number is 3 to 20 letters or digits." in response.content.decode()
