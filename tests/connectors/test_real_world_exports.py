"""Invoice exports of real invoicing tools and ERPs, as published in public repositories, read
with the default mapping. The samples are our own (names, numbers and amounts changed), shaped
like the real files: their headers, title lines, number and date styles."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from collections_app.models import Invoice
from connectors.importing.fields import resolve_headers
from connectors.models import ColumnMapping, ImportJob
from tests.connectors.helpers import ENGINES, run_bytes



# Invoice Ninja v4's export: a title line, an empty line and the section's name above the header,
# one row per invoice *line* ("Item Cost", "Item Quantity"), "$" in the amounts, what was paid
# ("Paid") and no balance, no currency column.
INVOICE_NINJA_V4 = (
    '"Invoice Ninja v4.5.17 - March 2, 2099 10:15 am",,,,,,,,,,,,,,,,,\n'
    ",,,,,,,,,,,,,,,,,\n"
    "INVOICES,,,,,,,,,,,,,,,,,\n"
    "Client,Email,Invoice Number,Amount,Paid,PO Number,Status,Invoice Date,Due Date,Discount,Partial/Deposit,"
    "Partial Due Date,Public Notes,Private Notes,Item Product,Item Notes,Item Cost,Item Quantity\n"
    "Fleurs Lambert,compta@fleurs-lambert.example,0031,$1,240.00,$240.00,,Partial,2099-01-12,2099-02-11,,$0.00,,,,"
    "design,Logo design,100.00,10\n"
    "Fleurs Lambert,compta@fleurs-lambert.example,0031,$1,240.00,$240.00,,Partial,2099-01-12,2099-02-11,,$0.00,,,,"
    "hosting,Hosting (year),240.00,1\n"
    "Garage Roux,atelier@garage-roux.example,0032,$86.40,$86.40,,Paid,2099-01-14,2099-02-13,,$0.00,,,,"
    "repair,Bumper repair,43.20,2\n"
    "Garage Roux,atelier@garage-roux.example,0033,$310.00,$0.00,,Sent,2099-01-20,2099-02-19,,$0.00,,,,"
    "repair,Paint,31.00,10\n"
)


def _quote_dollar_amounts(text: str) -> str:
    # the real export quotes "$1,240.00" (it holds a comma)
    return text.replace("$1,240.00", '"$1,240.00"')


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_invoice_ninja_v4_export_lines_paid_and_dollar_amounts(creditor, engine, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    content = _quote_dollar_amounts(INVOICE_NINJA_V4).encode()
    # given a creditor in euros: "$" amounts are not silently read as euros
    assert creditor.default_currency == "EUR"
    job = run_bytes(creditor, tmp_path, "invoices.csv", content, engine=engine, mode=ImportJob.Mode.VALID_ROWS)
    assert job.rows_valid == 0 and not Invoice.objects.filter(creditor=creditor).exists()
    assert {"row": 5, "column": "Amount",
            "message": "The amount is written in $ but the row's currency is EUR."} in job.errors

    # when the mapping says the file is in dollars
    mapping = ColumnMapping.objects.create(name="invoice-ninja", creditor=creditor, default_currency="USD")
    job = run_bytes(creditor, tmp_path, "invoices.csv", content, engine=engine, mapping=mapping)

    # then each invoice is read once (its second line is left out and said), in dollars, and
    # what it says was paid is recorded: the paid invoice is not collected
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.rows_total, job.invoices_created, job.invoices_unchanged) == (3, 2, 1)
    assert "1 row is a further line of an invoice above" in job.message
    invoices = {i.external_ref: (i.amount_total, i.amount_paid, i.currency, i.issue_date, i.status)
                for i in Invoice.objects.filter(creditor=creditor)}
    assert invoices["0031"] == (Decimal("1240.00"), Decimal("240.00"), "USD", dt.date(2099, 1, 12),
                                Invoice.Status.PARTIALLY_PAID)
    assert invoices["0033"][:2] == (Decimal("310.00"), Decimal("0"))
    # the fully paid one is already settled in the ERP: nothing to collect
    assert "0032" not in invoices


@pytest.mark.django_db
def test_what_was_paid_above_the_amount_is_a_row_error(creditor, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    text = ("Client,Invoice Number,Amount,Paid,Invoice Date,Due Date\n"
            "Fleurs Lambert,0041,120.00,150.00,2099-01-12,2099-02-11\n")
    job = run_bytes(creditor, tmp_path, "paid.csv", text.encode(), engine="orm")
    assert job.status == ImportJob.Status.FAILED
    assert job.errors == [{"row": 2, "column": "Paid", "message": "The amount paid cannot be above the amount."}]


def test_a_paid_column_is_only_read_without_a_balance():
    # Stripe's "Paid" is a yes/no flag, next to "Amount Remaining": the balance is the latter's
    columns = resolve_headers(["Number", "Customer Name", "Total", "Amount Remaining", "Due Date", "Paid"])
    assert columns == {0: "external_ref", 1: "name", 2: "amount", 3: "balance", 4: "due_date"}
    # a column mapped to "ignore" stays ignored
    assert resolve_headers(["Number", "Client", "Amount", "Paid", "Due Date"], {"Paid": "ignore"}) == {
        0: "external_ref", 1: "name", 2: "amount", 4: "due_date"}
    assert resolve_headers(["Number", "Client", "Amount", "Paid", "Due Date"])[3] == "paid"


@pytest.mark.django_db
def test_a_paid_flag_without_a_balance_is_left_alone(creditor, tmp_path):
    text = ("Number,Client,Amount,Paid,Due Date\n"
            "0051,Fleurs Lambert,120.00,false,2099-02-11\n"
            "0052,Garage Roux,80.00,true,2099-02-11\n")
    job = run_bytes(creditor, tmp_path, "flags.csv", text.encode(), engine="orm")
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert {i.external_ref: i.amount_paid for i in Invoice.objects.filter(creditor=creditor)} == {
        "0051": Decimal("0"), "0052": Decimal("0")}


# Akaunting's export: a workbook whose first sheet has its database names as headers
# ("invoiced_at", "due_at", "contact_name"), dates as Excel dates, an items sheet after it.
@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_akaunting_invoice_workbook(creditor, engine, tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "invoices"
    sheet.append(["invoice_number", "order_number", "status", "invoiced_at", "due_at", "amount", "discount_type",
                  "discount_rate", "currency_code", "currency_rate", "category_name", "contact_name", "contact_email",
                  "contact_tax_number", "contact_phone", "contact_address", "notes", "template", "parent_number"])
    sheet.append(["INV-00217", "PO-88", "sent", dt.datetime(2099, 3, 4), dt.datetime(2099, 4, 3), 1380.5, None,
                  None, "EUR", 1, "Sales", "Boulangerie Petit", "compta@petit.example", None, "01 44 55 66 77",
                  None, None, "default", None])
    sheet.append(["INV-00216", None, "sent", dt.datetime(2099, 2, 10), dt.datetime(2099, 3, 12), 99.9, None, None,
                  "USD", 1.08, "Sales", "Garage Martin", "gm@garage-martin.example", None, None, None, None,
                  "default", None])
    for cell in ("D2", "E2", "D3", "E3"):
        sheet[cell].number_format = "yyyymmdd"
    items = workbook.create_sheet("invoice_items")
    items.append(["invoice_number", "item_name", "quantity", "price", "total"])
    items.append(["INV-00217", "Bread", 10, 138.05, 1380.5])
    path = tmp_path / "invoices.xlsx"
    workbook.save(path)

    job = run_bytes(creditor, tmp_path, "invoices.xlsx", path.read_bytes(), engine=engine)

    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    first = Invoice.objects.get(creditor=creditor, external_ref="INV-00217")
    assert (first.issue_date, first.due_date, first.amount_total, first.customer.name, first.customer.email) == (
        dt.date(2099, 3, 4), dt.date(2099, 4, 3), Decimal("1380.50"), "Boulangerie Petit", "compta@petit.example")
    second = Invoice.objects.get(creditor=creditor, external_ref="INV-00216")
    assert (second.issue_date, second.currency) == (dt.date(2099, 2, 10), "USD")


# ERPNext's "Accounts Receivable" report as exported: "Party", "Voucher No", "Invoiced Amount",
# "Outstanding Amount", ageing columns and a totals row.
ERPNEXT_RECEIVABLES = (
    '"Posting Date","Party","Receivable Account","Voucher Type","Voucher No","Due Date","Invoiced Amount",'
    '"Paid Amount","Credit Note","Outstanding Amount","Age (Days)","0-30","31-60","61-90","91-120","121-Above",'
    '"Currency","Customer LPO","Territory","Customer Group"\n'
    '"2099-01-15","Menuiserie Gérard","Debtors - MG","Sales Invoice","ACC-SINV-2099-00021","2099-02-14","900.00",'
    '"150.00","0.00","750.00","12","750.00","0","0","0","0","EUR","","France","Commercial"\n'
    '"2099-01-18","Cabinet Durand","Debtors - MG","Sales Invoice","ACC-SINV-2099-00022","2099-02-17","420.00",'
    '"0.00","0.00","420.00","9","420.00","0","0","0","0","EUR","PO-12","France","Commercial"\n'
    '"Total","","","","","","1320.00","150.00","0.00","1170.00","","1170.00","0","0","0","0","","","",""\n'
)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_erpnext_accounts_receivable_report(creditor, engine, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    job = run_bytes(creditor, tmp_path, "Accounts Receivable.csv", ERPNEXT_RECEIVABLES.encode(), engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.rows_total, job.invoices_created) == (2, 2)
    assert "Row 4 reads as a totals row" in job.message
    invoice = Invoice.objects.get(creditor=creditor, external_ref="ACC-SINV-2099-00021")
    assert (invoice.customer.name, invoice.amount_total, invoice.amount_paid, invoice.issue_date,
            invoice.due_date) == ("Menuiserie Gérard", Decimal("900.00"), Decimal("150.00"), dt.date(2099, 1, 15),
                                  dt.date(2099, 2, 14))


# Invoice2Go's export: CamelCase names, "DocumentNumber", "EmailRecipient", "TotalAmount",
# "BalanceDueAmount", "AmountPaidAmount".
def test_invoice2go_balance_and_email_columns():
    headers = ["Id", "AccountId", "State", "DocumentDate", "DocumentNumber", "Comment", "Name", "EmailRecipient",
               "DocumentStatus", "PartPayment", "CurrencyCode", "TotalAmount", "BalanceDueAmount",
               "AmountPaidAmount", "SubtotalAmount", "TotalTaxAmount"]
    columns = {headers[i]: field for i, field in resolve_headers(headers).items()}
    assert columns == {"DocumentDate": "issue_date", "DocumentNumber": "external_ref", "Name": "name",
                       "EmailRecipient": "email", "CurrencyCode": "currency", "TotalAmount": "amount",
                       "BalanceDueAmount": "balance"}
