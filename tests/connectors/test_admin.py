"""Back-office: upload with dry-run preview and progress, error report, confirmation, the
monthly report (charts, CSV, PDF), accounting export, django-import-export buttons."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import tablib
from django.urls import reverse
from django.utils import timezone

from collections_app import services as core
from collections_app.models import Customer, Invoice
from connectors.models import ExportJob, ImportJob
from connectors.resources import CustomerResource, InvoiceResource, PaymentResource
from connectors.tasks import run_import_job
from notifications.models import Event
from tests.factories import make_invoice, make_request

FILES = Path(__file__).parent / "files"


def overdue_invoice(customer, *, amount: str, days_late: int, ref: str) -> Invoice:
    today = timezone.localdate()
    due = today - dt.timedelta(days=days_late)
    return core.invoice_create(creditor=customer.creditor, customer=customer, external_ref=ref,
                               amount_total=Decimal(amount), issue_date=due - dt.timedelta(days=30), due_date=due)


@pytest.mark.django_db
def test_upload_dry_run_preview_then_confirm(admin_client, creditor, django_capture_on_commit_callbacks):
    with open(FILES / "sage_cp1252_semicolon.csv", "rb") as handle, \
            django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(reverse("admin:connectors_importjob_add"), {
            "creditor": creditor.pk, "mode": "all_or_nothing", "dry_run": "on", "upload": handle})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{job.pk}/change/")
    assert job.status == "pending" and job.created_by is not None and len(callbacks) == 1

    page = admin_client.get(response["Location"]).content.decode()
    assert "import-progress" in page and reverse("admin:connectors_importjob_progress", args=[job.pk]) in page
    assert admin_client.get(reverse("admin:connectors_importjob_progress", args=[job.pk])).json()["finished"] is False

    assert run_import_job(job.pk) == "previewed"
    progress = admin_client.get(reverse("admin:connectors_importjob_progress", args=[job.pk])).json()
    assert progress == {**progress, "status": "previewed", "progress": 100, "finished": True}
    page = admin_client.get(reverse("admin:connectors_importjob_change", args=[job.pk])).content.decode()
    assert "FA-2026-0001" in page and "1234.56" in page  # preview table
    assert not Invoice.objects.exists()

    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(reverse("admin:connectors_importjob_changelist"),
                          {"action": "confirm_dry_runs", "_selected_action": [job.pk]})
    real = ImportJob.objects.exclude(pk=job.pk).get()
    assert real.dry_run is False and real.status == "pending"
    run_import_job(real.pk)
    assert Invoice.objects.filter(creditor=creditor).count() == 3
    download = admin_client.get(reverse("admin:connectors_importjob_return", args=[real.pk]))
    assert b"".join(download.streaming_content).decode("utf-8-sig").startswith("external_ref,pay_url")


@pytest.mark.django_db
def test_error_report_csv(admin_client, creditor, settings):
    settings.LANGUAGE_CODE = "en"
    from django.core.files import File

    from connectors.services import import_job_create, import_job_run

    with open(FILES / "bad_rows.csv", "rb") as handle:
        job = import_job_create(creditor=creditor, filename="bad_rows.csv", content=File(handle, name="bad.csv"))
    import_job_run(job=job)
    response = admin_client.get(reverse("admin:connectors_importjob_errors", args=[job.pk]))
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "row,column,message"
    assert lines[1] == "3,currency,Unknown currency XYZ."
    assert len(lines) == 5
    page = admin_client.get(reverse("admin:connectors_importjob_change", args=[job.pk])).content.decode()
    assert "Unknown currency XYZ." in page


@pytest.mark.django_db
def test_monthly_report_page_csv_and_pdf(admin_client, customer):
    request = make_request(customer, amount="200.00")
    payment = core.payment_create(customer=customer, method="card", amount="150.00", payment_request=request)
    core.payment_record_success(payment=payment)
    overdue_invoice(customer, amount="40.00", days_late=45, ref="LATE-45")
    month = timezone.localdate().strftime("%Y-%m")
    url = reverse("admin:connectors_monthly_report")

    page = admin_client.get(url, {"month": month, "creditor": customer.creditor.pk}).content.decode()
    assert "<svg" in page and "150.00" in page and "cdn" not in page.lower()
    from django.apps import apps

    # The reminder and retry sections exist once those modules are installed, "not available" before.
    models = apps.all_models["collections_app"]
    installed = [name for name in ("reminder", "collectionattempt") if name in models]
    assert page.count('class="not-available"') == 2 - len(installed)

    csv_text = admin_client.get(url, {"month": month, "creditor": customer.creditor.pk,
                                      "download": "csv"}).content.decode("utf-8-sig")
    assert "collected,Créancier" in csv_text and "card (1),150.00 EUR" in csv_text
    assert "aging,31-60,EUR,40.00" in csv_text
    pdf = admin_client.get(url, {"month": month, "download": "pdf"})
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


@pytest.mark.django_db
def test_monthly_report_figures(customer):
    from connectors.reports import monthly_report

    today = timezone.localdate()
    make_invoice(customer, amount="100.00", due_in_days=10)
    overdue = overdue_invoice(customer, amount="60.00", days_late=5, ref="LATE-5")
    core.invoice_write_off(invoice=make_invoice(customer, amount="5.00"))
    report = monthly_report(year=today.year, month=today.month, creditor=customer.creditor, today=today)
    assert report.aging["not_due"] == Decimal("100.00") and report.aging["0-30"] == Decimal("60.00")
    assert report.receivables == Decimal("160.00")
    invoiced = sum(i.amount_total for i in Invoice.objects.filter(issue_date__month=today.month,
                                                                  issue_date__year=today.year))
    assert report.invoiced == invoiced
    days = (report.end - report.start).days + 1
    assert report.dso_days == (Decimal("160.00") / invoiced * days).quantize(Decimal("0.1"))
    assert overdue.status == "open"
    from django.apps import apps

    models = apps.all_models["collections_app"]
    assert (report.scenarios is None) == ("reminder" not in models)
    assert (report.retries is None) == ("collectionattempt" not in models)


@pytest.mark.django_db
def test_accounting_export_download(admin_client, customer):
    request = make_request(customer, amount="30.00")
    payment = core.payment_create(customer=customer, method="transfer", amount="30.00", payment_request=request)
    core.payment_record_success(payment=payment)
    today = timezone.localdate()
    response = admin_client.get(reverse("admin:connectors_accounting_export"), {
        "creditor": customer.creditor.pk, "start": today.isoformat(), "end": today.isoformat(), "format": "fec"})
    assert response.status_code == 200
    text = response.content.decode("iso8859_15")
    assert text.startswith("JournalCode\tJournalLib\tEcritureNum") and "30,00" in text
    assert ExportJob.objects.filter(kind="fec", creditor=customer.creditor).exists()


@pytest.mark.django_db
def test_import_export_buttons_and_resources_use_the_services(admin_client, customer):
    page = admin_client.get(reverse("admin:collections_app_customer_changelist")).content.decode()
    assert reverse("admin:collections_app_customer_import") in page
    assert reverse("admin:collections_app_invoice_export") in \
        admin_client.get(reverse("admin:collections_app_invoice_changelist")).content.decode()

    data = tablib.Dataset(headers=["creditor", "external_ref", "customer_ref", "description", "currency",
                                   "amount_total", "issue_date", "due_date"])
    data.append([customer.creditor.pk, "IE-1", customer.external_ref, "", "EUR", "12.30", "2026-01-01",
                 "2026-01-31"])
    result = InvoiceResource().import_data(data, dry_run=False)
    assert not result.has_errors() and result.totals["new"] == 1
    assert Event.objects.filter(type="invoice.created", payload__invoice_external_ref="IE-1").exists()
    again = InvoiceResource().import_data(data, dry_run=False)
    assert again.totals["skip"] == 1 and Invoice.objects.filter(external_ref="IE-1").count() == 1

    customers = tablib.Dataset(headers=["creditor", "external_ref", "name", "email"])
    customers.append([customer.creditor.pk, "NEW-9", "Nouveau Client", "nouveau@example.fr"])
    assert CustomerResource().import_data(customers, dry_run=False).totals["new"] == 1
    assert Event.objects.filter(type="customer.created", payload__customer_external_ref="NEW-9").exists()

    payments = tablib.Dataset(headers=["creditor", "gateway_reference", "customer_ref", "amount", "currency",
                                       "method"])
    payments.append([customer.creditor.pk, "CHQ-0042", customer.external_ref, "12.30", "EUR", "other"])
    imported = PaymentResource().import_data(payments, dry_run=False)
    assert not imported.has_errors(), [r.errors for r in imported.rows]
    assert Invoice.objects.get(external_ref="IE-1").status == "paid"
    assert PaymentResource().import_data(payments, dry_run=False).totals["skip"] == 1
    exported = PaymentResource().export()
    assert "CHQ-0042" in exported.csv


@pytest.mark.django_db
def test_customer_export_carries_the_virtual_iban(customer):
    from collections_app.virtual_ibans.models import VirtualIBANRange
    from collections_app.virtual_ibans.services import virtual_iban_allocate

    VirtualIBANRange.objects.create(creditor=customer.creditor, country="FR", bank_code="30004",
                                    branch_code="00999", account_prefix="7", account_length=11)
    virtual = virtual_iban_allocate(customer=customer)
    exported = CustomerResource().export(queryset=Customer.objects.filter(pk=customer.pk)).dict
    assert exported[0]["virtual_iban"] == virtual.iban
    # a re-import of that export leaves the virtual IBAN alone (read-only column)
    assert CustomerResource().import_data(CustomerResource().export(queryset=Customer.objects.filter(
        pk=customer.pk)), dry_run=False).totals["skip"] == 1


@pytest.mark.django_db
def test_spreadsheet_files_never_carry_a_formula(customer):
    from connectors.services import errors_csv
    from connectors.spreadsheet import safe_cell

    assert [safe_cell(v) for v in ("=1+1", "+33 6", "@SUM(A1)", "-2+3", "\t=x", "-12.50", "+1 234,56", "Dupont", 7)] \
        == ["'=1+1", "+33 6", "'@SUM(A1)", "'-2+3", "'\t=x", "-12.50", "+1 234,56", "Dupont", 7]
    # given a name written by an ERP file, and a bad cell quoted in a row error
    customer.name = "=cmd|' /C calc'!A0"
    customer.save(update_fields=["name"])
    # then the admin export and the error report keep them as text
    exported = CustomerResource().export(queryset=Customer.objects.filter(pk=customer.pk)).dict
    assert exported[0]["name"] == "'=cmd|' /C calc'!A0"
    report = errors_csv([{"row": 2, "column": "=A1", "message": "-x"}]).decode("utf-8-sig").splitlines()
    assert report[1] == "2,'=A1,'-x"


@pytest.mark.django_db
def test_column_mapping_form_checks_the_fields(admin_client, creditor, settings):
    settings.LANGUAGE_CODE = "en"
    url = reverse("admin:connectors_columnmapping_add")
    page = admin_client.get(url).content.decode()
    assert "numero_facture" in page  # the default headers are shown
    response = admin_client.post(url, {"name": "sage", "creditor": creditor.pk, "columns": '{"Num": "invoice"}',
                                       "delimiter": "auto", "decimal_separator": "auto", "date_format": "",
                                       "default_currency": ""})
    assert response.status_code == 200 and "Unknown field(s): invoice" in response.content.decode()
    response = admin_client.post(url, {"name": "sage", "creditor": creditor.pk,
                                       "columns": '{"Num": "external_ref", "Divers": "ignore"}',
                                       "delimiter": ";", "decimal_separator": ",", "date_format": "%d/%m/%Y",
                                       "default_currency": "EUR"})
    assert response.status_code == 302
