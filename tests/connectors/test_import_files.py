"""Invoice import from real-shaped files, on both writing engines (set-based PostgreSQL and
the services one by one): the same rows, errors and events either way."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files import File

from collections_app.models import Customer, Invoice, PaymentRequest
from connectors.models import ColumnMapping, ImportJob
from connectors.services import import_job_create, import_job_run
from notifications.models import Event, EventSubject
from tests.connectors.helpers import ENGINES, run_bytes, run_path

FILES = Path(__file__).parent / "files"


def run_file(creditor, name: str, **options) -> ImportJob:
    return run_path(creditor, FILES / name, **options)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_semicolon_cp1252_comma_decimals_french_dates(creditor, engine):
    job = run_file(creditor, "sage_cp1252_semicolon.csv", engine=engine)

    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.rows_total, job.rows_valid, job.rows_rejected) == (3, 3, 0)
    assert (job.customers_created, job.invoices_created, job.payment_requests_created) == (2, 3, 3)
    first = Invoice.objects.get(creditor=creditor, external_ref="FA-2026-0001")
    assert first.amount_total == Decimal("1234.56")
    assert first.issue_date == dt.date(2026, 1, 5) and first.due_date == dt.date(2026, 2, 4)
    assert first.customer.name == "Société Générale des Eaux"
    assert first.customer.phone == "01 23 45 67 89"
    second = Invoice.objects.get(creditor=creditor, external_ref="FA-2026-0002")
    assert second.description == "Pain & viennoiseries\r\nlivraison comprise"
    assert second.amount_total == Decimal("89.90")
    assert Invoice.objects.get(external_ref="FA-2026-0003").description == "Frais de dossier – 12 €"
    assert Customer.objects.get(creditor=creditor, external_ref="CLI002").name == "Boulangerie Lefèvre"
    request = PaymentRequest.objects.get(creditor=creditor, reference="FA-2026-0001")
    assert request.amount == Decimal("1234.56") and request.status == "open"
    assert list(request.invoices.all()) == [first]
    assert len(request.token) >= 43 and len(request.short_reference) == 8
    assert job.return_file.name.endswith(".csv")
    lines = job.return_file.open("rb").read().decode("utf-8-sig").splitlines()
    assert lines[0] == "external_ref,pay_url,short_reference,virtual_iban,iban,bic,transfer_reference,qr_code_url"
    assert lines[1].startswith(f"FA-2026-0001,http://localhost:8000/pay/{request.token}/,{request.short_reference},")
    assert len(lines) == 4


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_utf8_bom_english_headers(creditor, engine):
    job = run_file(creditor, "utf8_bom_english.csv", engine=engine)

    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    ana = Invoice.objects.get(creditor=creditor, external_ref="INV-1001")
    assert ana.customer.name == "Ana Müller" and ana.customer.email == "ana@example.com"
    assert ana.description == "Plan Pro – janvier"
    bob = Invoice.objects.get(creditor=creditor, external_ref="INV-1002")
    assert (bob.amount_total, bob.currency, bob.description) == (Decimal("1250.00"), "GBP", "Consulting, 5 days")
    assert bob.customer.name == "Bob O'Neil"


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_xlsx(creditor, engine):
    job = run_file(creditor, "excel_export.xlsx", engine=engine)

    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.rows_total, job.invoices_created, job.customers_created) == (3, 3, 2)
    x100 = Invoice.objects.get(creditor=creditor, external_ref="X-100")
    assert (x100.amount_total, x100.due_date) == (Decimal("480.50"), dt.date(2026, 3, 31))
    assert Invoice.objects.get(creditor=creditor, external_ref="101").amount_total == Decimal("75.00")
    assert Invoice.objects.get(creditor=creditor, external_ref="X-102").amount_total == Decimal("1020.30")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_xlsx_numbers_do_not_follow_the_mappings_decimal_comma(creditor, engine):
    # given the mapping of an ERP whose CSV files write "1 234,56", and a workbook of the same
    # ERP whose amounts are numbers: a number has no decimal separator to follow
    mapping = ColumnMapping.objects.create(name="fr-erp", creditor=creditor, decimal_separator=",",
                                           date_format="%d/%m/%Y")
    job = run_file(creditor, "excel_export.xlsx", engine=engine, mapping=mapping)
    # then
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert Invoice.objects.get(creditor=creditor, external_ref="X-100").amount_total == Decimal("480.50")
    assert Invoice.objects.get(creditor=creditor, external_ref="X-102").amount_total == Decimal("1020.30")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_excel_csv_with_sep_hint_title_rows_times_and_currency_codes(creditor, engine, settings):
    # given a CSV saved from Excel: "sep=;" line, a title and a blank line above the header,
    # dates with a midnight time, amounts written with their currency, "€" and "Euro" as currencies
    settings.LANGUAGE_CODE = "en"
    # when
    job = run_file(creditor, "excel_sep_hint_titled.csv", engine=engine, mode=ImportJob.Mode.VALID_ROWS)
    # then the row numbers are the file's lines, and an amount in another currency is refused
    assert job.errors == [{"row": 7, "column": "Montant TTC",
                           "message": "The amount is written in USD but the row's currency is EUR."}]
    assert (job.rows_total, job.invoices_created) == (3, 2)
    first = Invoice.objects.get(creditor=creditor, external_ref="EX-1")
    assert (first.amount_total, first.currency, first.issue_date, first.due_date) == (
        Decimal("1234.56"), "EUR", dt.date(2026, 3, 4), dt.date(2026, 4, 3))
    assert first.customer.name == "Menuiserie Gérard"
    assert Invoice.objects.get(creditor=creditor, external_ref="EX-2").amount_total == Decimal("99.00")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_xlsx_with_title_rows_above_the_header(creditor, engine):
    job = run_file(creditor, "titled_export.xlsx", engine=engine)

    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.rows_total, job.invoices_created) == (2, 2)
    assert Invoice.objects.get(creditor=creditor, external_ref="T-2").amount_total == Decimal("42.42")
    assert Invoice.objects.get(creditor=creditor, external_ref="T-1").due_date == dt.date(2026, 4, 3)


@pytest.mark.django_db
def test_xlsx_whose_invoices_are_on_a_later_sheet(creditor):
    job = run_file(creditor, "cover_sheet.xlsx", engine="orm")

    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert sorted(Invoice.objects.filter(creditor=creditor).values_list("external_ref", flat=True)) == ["S-1", "S-2"]


@pytest.mark.django_db
def test_an_old_excel_workbook_is_refused_with_what_to_do(creditor, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    path = tmp_path / "export.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    with open(path, "rb") as handle:
        job = import_job_create(creditor=creditor, filename=path.name, content=File(handle, name=path.name))
    job, _run = import_job_run(job=job, engine="orm")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "save it as .xlsx or as CSV" in job.message


@pytest.mark.django_db
def test_a_file_without_a_recognisable_header_says_which_columns_are_missing(creditor, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    path = tmp_path / "no_header.csv"
    path.write_text("Export du 04/03/2026\nfoo;bar\nEX-1;12,00\n", encoding="utf-8")
    with open(path, "rb") as handle:
        job = import_job_create(creditor=creditor, filename=path.name, content=File(handle, name=path.name),
                                mode=ImportJob.Mode.ALL_OR_NOTHING)
    job, _run = import_job_run(job=job, engine="orm")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert {e["row"] for e in job.errors} == {1}
    assert {e["column"] for e in job.errors} == {"external_ref", "customer_ref", "name", "amount", "due_date"}
    assert not Invoice.objects.filter(creditor=creditor).exists()


BAD_ROW_ERRORS = [
    {"row": 3, "column": "currency", "message": "Unknown currency XYZ."},
    {"row": 4, "column": "amount", "message": "The amount must be greater than zero."},
    {"row": 5, "column": "issue_date",
     "message": "“31/02/2026” is not a valid date (expected dd/mm/yyyy, yyyy-mm-dd)."},
    {"row": 6, "column": "reference", "message": "Invoice number OK-1 is already on row 2."},
]


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_bad_rows_all_or_nothing_imports_nothing(creditor, engine, settings):
    settings.LANGUAGE_CODE = "en"
    events_before = Event.objects.count()
    job = run_file(creditor, "bad_rows.csv", engine=engine)

    assert job.status == ImportJob.Status.FAILED
    assert job.errors == BAD_ROW_ERRORS
    assert (job.rows_total, job.rows_valid, job.rows_rejected) == (6, 2, 4)
    assert job.invoices_created == 0
    assert not Invoice.objects.filter(creditor=creditor).exists()
    assert not Customer.objects.filter(creditor=creditor).exists()
    assert not PaymentRequest.objects.filter(creditor=creditor).exists()
    assert list(Event.objects.filter(id__gt=0).order_by("id").values_list("type", flat=True))[events_before:] == [
        "invoice_import.started", "invoice_import.finished"]


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_bad_rows_valid_rows_mode_imports_the_rest(creditor, engine, settings):
    settings.LANGUAGE_CODE = "en"
    job = run_file(creditor, "bad_rows.csv", engine=engine, mode=ImportJob.Mode.VALID_ROWS)

    assert job.status == ImportJob.Status.PARTIAL
    assert job.errors == BAD_ROW_ERRORS
    assert sorted(Invoice.objects.filter(creditor=creditor).values_list("external_ref", flat=True)) == ["OK-1",
                                                                                                         "OK-2"]
    assert Invoice.objects.get(external_ref="OK-1").customer.external_ref == "C1"


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_reimport_creates_nothing_new(creditor, engine):
    first = run_file(creditor, "sage_cp1252_semicolon.csv", engine=engine)
    counts = (Customer.objects.count(), Invoice.objects.count(), PaymentRequest.objects.count(),
              Event.objects.exclude(type__startswith="invoice_import.").count())
    tokens = set(PaymentRequest.objects.values_list("token", flat=True))

    again = run_file(creditor, "sage_cp1252_semicolon.csv", engine=engine)

    assert first.invoices_created == 3
    assert again.status == ImportJob.Status.SUCCEEDED
    assert (again.invoices_created, again.invoices_unchanged, again.customers_created,
            again.payment_requests_created) == (0, 3, 0, 0)
    assert (Customer.objects.count(), Invoice.objects.count(), PaymentRequest.objects.count(),
            Event.objects.exclude(type__startswith="invoice_import.").count()) == counts
    assert set(PaymentRequest.objects.values_list("token", flat=True)) == tokens


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_dry_run_previews_and_writes_nothing(creditor, engine):
    job = run_file(creditor, "sage_cp1252_semicolon.csv", engine=engine, dry_run=True)

    assert job.status == ImportJob.Status.PREVIEWED
    assert (job.invoices_created, job.customers_created, job.payment_requests_created) == (3, 2, 3)
    assert job.preview[0]["external_ref"] == "FA-2026-0001" and job.preview[0]["amount"] == "1234.56"
    assert not Invoice.objects.exists() and not Customer.objects.exists()
    assert not job.return_file


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_changed_rows_update_through_the_services(creditor, engine, tmp_path):
    run_file(creditor, "utf8_bom_english.csv", engine=engine)
    changed = (FILES / "utf8_bom_english.csv").read_text("utf-8-sig").replace("49.90", "59.90").replace(
        "ana@example.com", "ana@new.example")
    path = tmp_path / "changed.csv"
    path.write_text(changed, "utf-8")
    with open(path, "rb") as handle:
        job = import_job_create(creditor=creditor, filename="changed.csv", content=File(handle, name="changed.csv"))
    job, _ = import_job_run(job=job, engine=engine)

    assert (job.invoices_updated, job.invoices_unchanged, job.customers_updated) == (1, 1, 1)
    invoice = Invoice.objects.get(external_ref="INV-1001")
    assert invoice.amount_total == Decimal("59.90") and invoice.customer.email == "ana@new.example"
    assert PaymentRequest.objects.get(reference="INV-1001").amount == Decimal("59.90")
    assert Event.objects.filter(type="invoice.updated", payload__invoice_external_ref="INV-1001").count() == 1


def event_shape(creditor_id):
    """A creditor's events without ids and tokens: (type, payload, subject kinds), in a stable order."""
    events = Event.objects.filter(creditor_id=creditor_id).exclude(type__startswith="invoice_import.")
    result = []
    for event in events.order_by("type", "payload__invoice_external_ref", "payload__reference",
                                 "payload__customer_external_ref", "id"):
        payload = dict(event.payload)
        for key in ("customer_id", "invoice_id", "payment_request_id", "invoice_ids", "pay_url",
                    "short_reference", "expires_at"):
            payload.pop(key, None)
        kinds = sorted(EventSubject.objects.filter(event=event).values_list("kind", flat=True))
        result.append((event.type, payload, kinds))
    return result


@pytest.mark.django_db
@pytest.mark.postgres
def test_set_based_events_look_like_the_services_ones(creditor):
    """The PostgreSQL engine writes its outbox events itself: same types, payload keys and
    values (ids and tokens aside) and subjects as the services write them."""
    from tests.factories import CreditorFactory

    other = CreditorFactory()
    run_file(creditor, "utf8_bom_english.csv", engine="postgres")
    run_file(other, "utf8_bom_english.csv", engine="orm")

    assert event_shape(creditor.pk) == event_shape(other.pk)
    request = PaymentRequest.objects.get(creditor=creditor, reference="INV-1001")
    event = Event.objects.get(type="payment_request.created", payload__payment_request_id=request.pk)
    assert event.payload["pay_url"] == request.pay_url
    assert event.payload["invoice_ids"] == [request.invoices.get().pk]
    assert event.dispatched_at is None


@pytest.mark.django_db
@pytest.mark.postgres
def test_set_based_engine_writes_a_big_file_chunk_by_chunk(creditor, monkeypatch):
    """Invoices, requests, links and events are written in chunks of rows: with a chunk of one
    row, every row is its own round, and the result is still the services' one."""
    from connectors.importing import writer
    from tests.factories import CreditorFactory

    monkeypatch.setattr(writer, "CHUNK_ROWS", 1)
    other = CreditorFactory()
    for name in ("sage_cp1252_semicolon.csv", "utf8_bom_english.csv"):
        job = run_file(creditor, name, engine="postgres")
        assert job.status == ImportJob.Status.SUCCEEDED, job.errors
        run_file(other, name, engine="orm")

    assert event_shape(creditor.pk) == event_shape(other.pk)
    invoices = Invoice.objects.filter(creditor=creditor)
    assert invoices.count() == Invoice.objects.filter(creditor=other).count() > 3
    for invoice in invoices:
        request = PaymentRequest.objects.get(creditor=creditor, reference=invoice.external_ref)
        assert list(request.invoices.all()) == [invoice]
        assert (request.amount, request.customer_id) == (invoice.amount_total, invoice.customer_id)
    # Event ids follow the objects' ids, as when they are created one by one.
    created = Event.objects.filter(creditor_id=creditor.pk, type="invoice.created").order_by("id")
    assert [e.payload["invoice_id"] for e in created] == sorted(e.payload["invoice_id"] for e in created)


@pytest.mark.django_db
def test_readme_example_file_imports_with_the_default_mapping(creditor):
    from django.conf import settings

    job = run_file(creditor, str(Path(settings.BASE_DIR) / "docs" / "examples" / "invoices.csv"), engine="orm")
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert Invoice.objects.get(external_ref="F2026-0001").amount_total == Decimal("1250.00")
    assert Invoice.objects.get(external_ref="F2026-0002").description == \
        "Maintenance four\r\n(pièces et main-d’œuvre)"


def test_header_recognition_ignores_case_accents_and_punctuation():
    from connectors.importing.fields import resolve_headers

    headers = ["N° Facture", "Code-Client", "Raison sociale", "Montant TTC", "Date d'envoi", "Échéance",
               "Divers"]
    assert resolve_headers(headers) == {0: "external_ref", 1: "customer_ref", 2: "name", 3: "amount",
                                        5: "due_date"}
    assert resolve_headers(headers, {"Divers": "description", "Montant TTC": "ignore"}) == {
        0: "external_ref", 1: "customer_ref", 2: "name", 5: "due_date", 6: "description"}
    # several columns for one field: the company over a contact; the total and what remains due
    headers = ["N° facture", "Code client", "Nom", "Raison sociale", "Montant TTC", "Reste à payer", "Échéance"]
    assert resolve_headers(headers) == {0: "external_ref", 1: "customer_ref", 3: "name", 4: "amount",
                                        5: "balance", 6: "due_date"}
    # only what remains due: that is the amount to collect
    assert resolve_headers(["Facture", "Code client", "Nom", "Solde", "Échéance"])[3] == "amount"


@pytest.mark.django_db
def test_a_job_runs_once(creditor):
    job = run_file(creditor, "utf8_bom_english.csv", engine="orm")
    again, run = import_job_run(job=job)
    assert run is None and again.status == ImportJob.Status.SUCCEEDED
    assert Invoice.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_imports_of_the_same_file_at_once_create_each_invoice_once():
    import threading

    from django.db import connection

    from tests.factories import CreditorFactory

    creditor = CreditorFactory()
    jobs = []
    for _ in range(2):
        with open(FILES / "sage_cp1252_semicolon.csv", "rb") as handle:
            jobs.append(import_job_create(creditor=creditor, filename="same.csv",
                                          content=File(handle, name="same.csv")))
    barrier = threading.Barrier(2)
    failures = []

    def work(job):
        try:
            barrier.wait()
            import_job_run(job=job, engine="postgres")
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert Invoice.objects.filter(creditor=creditor).count() == 3
    assert PaymentRequest.objects.filter(creditor=creditor).count() == 3
    assert Customer.objects.filter(creditor=creditor).count() == 2
    done = [ImportJob.objects.get(pk=j.pk) for j in jobs]
    assert all(j.status == ImportJob.Status.SUCCEEDED for j in done)
    assert sum(j.invoices_created for j in done) == 3
    assert Event.objects.filter(type="payment_request.created", creditor_id=creditor.pk).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_rows_that_would_break_existing_invoices_are_row_errors(creditor, engine, tmp_path, settings):
    from collections_app import services as core

    settings.LANGUAGE_CODE = "en"
    run_file(creditor, "utf8_bom_english.csv", engine=engine)
    request = PaymentRequest.objects.get(reference="INV-1001")
    payment = core.payment_create(customer=request.customer, method="card", amount="49.90", payment_request=request)
    core.payment_record_success(payment=payment)
    text = (FILES / "utf8_bom_english.csv").read_text("utf-8-sig")
    text = text.replace("49.90", "59.90").replace("INV-1002,cus_bob", "INV-1002,cus_carol")
    text += "INV-1003,cus_dan,Dan,dan@example.com,,10.00,EUR,2026-01-12,2026-02-11,\n"
    path = tmp_path / "changed.csv"
    path.write_text(text, "utf-8")
    with open(path, "rb") as handle:
        job = import_job_create(creditor=creditor, filename="changed.csv", content=File(handle, name="changed.csv"),
                                mode=ImportJob.Mode.VALID_ROWS)
    job, _ = import_job_run(job=job, engine=engine)

    assert job.status == ImportJob.Status.PARTIAL
    assert job.errors == [
        {"row": 2, "column": "reference", "message": "Invoice INV-1001 is Paid and cannot be changed."},
        {"row": 3, "column": "customer_ref", "message": "Invoice INV-1002 already exists for customer cus_bob."},
    ]
    assert job.invoices_created == 1 and Invoice.objects.get(external_ref="INV-1001").amount_total == Decimal("49.90")
    assert Invoice.objects.get(external_ref="INV-1002").customer.external_ref == "cus_bob"
    assert [line.split(",")[0] for line in
            job.return_file.open("rb").read().decode("utf-8-sig").splitlines()] == ["external_ref", "INV-1003"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_tables_an_import_writes_carry_no_redundant_index():
    """Every index is written for every imported row: none may be a leading part of another
    one of its table (same columns first: the longer one serves the same lookups), which is
    also what Django's extra varchar_pattern_ops index of an indexed CharField is."""
    from django.db import connection

    tables = [model._meta.db_table for model in (Customer, Invoice, PaymentRequest, Event, EventSubject)]
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT t.relname, i.relname, x.indkey::text
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname = ANY(%s) AND x.indpred IS NULL AND x.indexprs IS NULL""", [tables])
        rows = cursor.fetchall()
    redundant = []
    for table, name, key in rows:
        columns = key.split()
        for other_table, other_name, other_key in rows:
            other = other_key.split()
            if other_table == table and other_name != name and other[:len(columns)] == columns \
                    and (len(other) > len(columns) or name > other_name):
                redundant.append((name, other_name))
    assert redundant == []


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_the_return_file_carries_the_virtual_iban_of_every_new_customer(creditor, engine):
    # given: a creditor whose debtors pay by transfer to virtual IBANs (one per customer)
    import csv
    import io

    from schwifty import IBAN

    from collections_app.virtual_ibans.models import VirtualIBAN, VirtualIBANRange

    VirtualIBANRange.objects.create(creditor=creditor, country="FR", bank_code="30004", branch_code="00999",
                                    account_prefix="9", account_length=11)
    # when: a file of new customers is imported, before any worker has run
    job = run_file(creditor, "utf8_bom_english.csv", engine=engine)
    # then: every line of the return file has its customer's virtual IBAN, valid and allocated
    rows = list(csv.DictReader(io.StringIO(job.return_file.open("rb").read().decode("utf-8-sig"))))
    assert rows and all(row["virtual_iban"] for row in rows)
    for row in rows:
        IBAN(row["virtual_iban"])  # raises when invalid
        invoice = Invoice.objects.get(creditor=creditor, external_ref=row["external_ref"])
        assert VirtualIBAN.objects.get(customer=invoice.customer).iban == row["virtual_iban"]


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_per_debt_virtual_ibans_are_allocated_once_for_the_return_file(creditor, engine):
    import csv
    import io

    from collections_app.virtual_ibans.models import VirtualIBAN, VirtualIBANRange
    from notifications.dispatch import dispatch_pending

    VirtualIBANRange.objects.create(creditor=creditor, country="FR", bank_code="30004", branch_code="00999",
                                    account_prefix="9", account_length=11, allocation_mode="per_debt")
    job = run_file(creditor, "utf8_bom_english.csv", engine=engine)
    rows = list(csv.DictReader(io.StringIO(job.return_file.open("rb").read().decode("utf-8-sig"))))
    # one virtual IBAN per debt, numbered in sequence, each announced by its event
    assert len({row["virtual_iban"] for row in rows}) == len(rows) == VirtualIBAN.objects.count()
    numbers = sorted(VirtualIBAN.objects.values_list("number", flat=True))
    assert numbers == list(range(1, len(rows) + 1))
    assert Event.objects.filter(type="virtual_iban.allocated").count() == len(rows)
    # the outbox consumer, running afterwards, finds them there
    dispatch_pending()
    assert VirtualIBAN.objects.count() == len(rows)


def _run_text(creditor, tmp_path, name: str, text: str, *, engine: str) -> ImportJob:
    return run_bytes(creditor, tmp_path, name, text.encode("cp1252"), engine=engine)


BALANCES_DAY_1 = (
    "N° facture;Code client;Raison sociale;Montant TTC;Reste à payer;Date facture;Échéance\r\n"
    "B-1;K1;Quincaillerie Petit;100,00;100,00;01/03/2026;31/03/2026\r\n"
    "B-2;K1;Quincaillerie Petit;200,00;50,00;01/03/2026;31/03/2026\r\n"
    "B-3;K2;Fleurs Lambert;80,00;0,00;01/03/2026;31/03/2026\r\n"
)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_what_the_erp_says_was_paid_outside_is_recorded_and_stops_collection(creditor, engine, tmp_path):
    from collections_app.models import Payment

    # given a daily file with the invoice total and what remains due in the ERP
    job = _run_text(creditor, tmp_path, "day1.csv", BALANCES_DAY_1, engine=engine)
    # then what the ERP received outside is a payment on the invoice, and a settled invoice is not created
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.invoices_created, job.invoices_unchanged) == (2, 1)
    b2 = Invoice.objects.get(creditor=creditor, external_ref="B-2")
    assert (b2.amount_total, b2.amount_paid, b2.status) == (Decimal("200.00"), Decimal("150.00"), "partially_paid")
    outside = Payment.objects.get(customer=b2.customer, method="other")
    assert (outside.amount, outside.status, outside.gateway) == (Decimal("150.00"), "succeeded", "erp")
    assert PaymentRequest.objects.get(creditor=creditor, reference="B-2").amount_due == Decimal("50.00")
    assert not Invoice.objects.filter(creditor=creditor, external_ref="B-3").exists()
    # when the same file comes again, nothing new is recorded
    again = _run_text(creditor, tmp_path, "day1-again.csv", BALANCES_DAY_1, engine=engine)
    assert (again.invoices_created, again.invoices_updated, again.invoices_unchanged) == (0, 0, 3)
    assert Payment.objects.filter(customer=b2.customer).count() == 1
    # when the next day's file says B-1 was paid in full (a cheque), it is paid and its pay link closed
    day2 = BALANCES_DAY_1.replace("B-1;K1;Quincaillerie Petit;100,00;100,00", "B-1;K1;Quincaillerie Petit;100,00;0,00")
    job = _run_text(creditor, tmp_path, "day2.csv", day2, engine=engine)
    assert (job.invoices_updated, job.invoices_unchanged) == (1, 2)
    b1 = Invoice.objects.get(creditor=creditor, external_ref="B-1")
    assert b1.status == Invoice.Status.PAID
    assert PaymentRequest.objects.get(creditor=creditor, reference="B-1").status == PaymentRequest.Status.PAID
    assert Event.objects.filter(type="invoice.paid", payload__invoice_id=b1.pk).exists()


@pytest.mark.django_db
def test_a_balance_above_the_amount_is_a_row_error(creditor, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    text = ("reference;customer_ref;name;amount;balance;due_date\r\n"
            "E-1;K1;Client;100,00;120,00;31/12/2099\r\nE-2;K1;Client;100,00;-1,00;31/12/2099\r\n")
    job = _run_text(creditor, tmp_path, "bad.csv", text, engine="orm")
    assert job.errors == [
        {"row": 2, "column": "balance", "message": "The balance due cannot be above the amount."},
        {"row": 3, "column": "balance", "message": "The balance due cannot be negative."}]


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_a_totals_row_at_the_end_is_not_an_invoice_and_is_said(creditor, engine, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    text = ("N° facture;Code client;Nom;Montant TTC;Échéance\r\n"
            "TT-1;K1;Client Un;100,00;31/12/2099\r\n"
            "SO-2;K2;Client Deux;50,00;31/12/2099\r\n"
            ";;;;\r\n"
            "Total général;;;150,00;\r\n")
    job = _run_text(creditor, tmp_path, "with_total.csv", text, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.rows_total, job.invoices_created) == (2, 2)
    assert job.message == "Row 5 reads as a totals row (“Total général”): it was not imported."


ODOO_LIKE = ("Number,Partner,Invoice/Bill Date,Due Date,Total,Amount Due,Currency,Status\n"
             "INV/2099/0001,Garage Martin,2099-01-05,2099-02-04,480.50,480.50,EUR,Posted\n"
             "INV/2099/0002,Cabinet Durand,2099-01-06,2099-02-05,200.00,50.00,EUR,Partially Paid\n")
XERO_LIKE = ("*ContactName,EmailAddress,*InvoiceNumber,Reference,*InvoiceDate,*DueDate,Total,InvoiceAmountPaid,"
             "InvoiceAmountDue,Currency\n"
             "Atelier Roux,compta@atelier-roux.example,INV-0042,PO 7781,2099-01-05,2099-02-04,300.00,100.00,200.00,EUR\n")
CEGID_LIKE = ("Compte auxiliaire;Libellé tiers;N° pièce;Date pièce;Date échéance;Montant échéance;Solde\r\n"
              "411DUPONT;Dupont SARL;VT-881;05/01/2099;04/02/2099;120,00;120,00\r\n")
QUICKBOOKS_LIKE = ("Num,Customer,Date,Due Date,Amount,Open Balance\n"
                   "1001,Fleurs Lambert,01/05/2099,01/06/2099,120.00,120.00\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_exports_without_customer_codes_and_with_amount_due_next_to_the_total(creditor, engine, tmp_path):
    # Odoo: "Number", "Partner", "Total" and "Amount Due" (what remains due)
    job = _run_text(creditor, tmp_path, "odoo.csv", ODOO_LIKE, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    second = Invoice.objects.get(creditor=creditor, external_ref="INV/2099/0002")
    assert (second.amount_total, second.amount_paid) == (Decimal("200.00"), Decimal("150.00"))
    # no customer code: the customer is known by its name, and found again by it
    assert second.customer.external_ref == second.customer.name == "Cabinet Durand"
    assert second.issue_date == dt.date(2099, 1, 6)
    # QuickBooks: "Num", "Customer", "Amount", "Open Balance"
    job = _run_text(creditor, tmp_path, "qb.csv", QUICKBOOKS_LIKE, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert Invoice.objects.get(creditor=creditor, external_ref="1001").customer.name == "Fleurs Lambert"
    # Xero: CamelCase headers, and a "Reference" (the customer's order) next to the invoice number
    job = _run_text(creditor, tmp_path, "xero.csv", XERO_LIKE, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    xero = Invoice.objects.get(creditor=creditor, external_ref="INV-0042")
    assert (xero.amount_total, xero.amount_paid, xero.customer.email) == (
        Decimal("300.00"), Decimal("100.00"), "compta@atelier-roux.example")
    # Cegid / Sage ledgers: the auxiliary account is the customer code
    job = _run_text(creditor, tmp_path, "cegid.csv", CEGID_LIKE, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert Invoice.objects.get(creditor=creditor, external_ref="VT-881").customer.external_ref == "411DUPONT"


REPORT_LIKE = ("BALANCE AGEE CLIENTS - SOCIETE EXEMPLE\r\n"
               "Edition du 23-NOV-2099\r\n"
               "\r\n"
               "N° pièce;Code tiers;Intitulé;Montant TTC (EUR);Date pièce;Échéance\r\n"
               "RP-1;K1;Client Un;100,00;20990105;20990204\r\n"
               "RP-2;K2;Client Deux;50,00;05-JAN-2099;04-FEB-2099\r\n"
               "N° pièce;Code tiers;Intitulé;Montant TTC (EUR);Date pièce;Échéance\r\n"
               "RP-3;K1;Client Un;25,00;6 janv. 2099;5 févr. 2099\r\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_a_printed_report_export_with_page_headers_and_other_date_styles(creditor, engine, tmp_path, settings):
    # given a report-style export: title lines, the header again after a page break, a unit
    # in a header, compact, Oracle and French-month dates
    settings.LANGUAGE_CODE = "en"
    # when
    job = _run_text(creditor, tmp_path, "balance_agee.csv", REPORT_LIKE, engine=engine)
    # then
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.rows_total, job.invoices_created) == (3, 3)
    assert job.message.endswith("Row 7 repeats the header row: it was not imported.")
    days = {i.external_ref: (i.issue_date, i.due_date, i.amount_total) for i in Invoice.objects.filter(creditor=creditor)}
    assert days == {"RP-1": (dt.date(2099, 1, 5), dt.date(2099, 2, 4), Decimal("100.00")),
                    "RP-2": (dt.date(2099, 1, 5), dt.date(2099, 2, 4), Decimal("50.00")),
                    "RP-3": (dt.date(2099, 1, 6), dt.date(2099, 2, 5), Decimal("25.00"))}


# Exports of common invoicing tools and ERPs as their own export screens name the columns,
# read with the default mapping (no saved column mapping).
STRIPE_INVOICES = ("id,Number,Customer,Customer Name,Customer Email,Amount Due,Amount Paid,Amount Remaining,Currency,"
                   "Date (UTC),Due Date (UTC),Status,Subtotal,Total,Tax,Paid\n"
                   "in_1Oa2b3C,7A1B2C3D-0001,cus_PqR1,Garage Martin,compta@garage-martin.example,1200.00,200.00,"
                   "1000.00,eur,2099-01-15 09:12,2099-02-14 09:12,open,1000.00,1200.00,200.00,false\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_stripe_invoice_export(creditor, engine, tmp_path):
    # Stripe's dashboard export puts the time zone after its date headers ("Due Date (UTC)"),
    # writes lower-case currencies, and gives Total, Amount Due and Amount Remaining.
    job = _run_text(creditor, tmp_path, "invoices.csv", STRIPE_INVOICES, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    invoice = Invoice.objects.get(creditor=creditor, external_ref="7A1B2C3D-0001")
    assert (invoice.amount_total, invoice.amount_paid, invoice.currency) == (Decimal("1200.00"), Decimal("200.00"),
                                                                             "EUR")
    assert (invoice.issue_date, invoice.due_date) == (dt.date(2099, 1, 15), dt.date(2099, 2, 14))
    assert (invoice.customer.name, invoice.customer.email) == ("Garage Martin", "compta@garage-martin.example")


ODOO_FR = ('"Numéro","Partenaire","Date de facturation","Date d\'échéance","Référence","Montant HT","Total",'
           '"Montant dû","Devise","Statut","État du paiement"\n'
           '"FAC/2099/00012","Garage Martin","2099-01-15","2099-02-14","BC-7781","1000.00","1200.00","1000.00",'
           '"EUR","Comptabilisé","Partiellement réglé"\n')
# The "... Signed" amounts are in the company's currency (EUR); "Currency" is the invoice's.
ODOO_SIGNED = ('"Number","Partner","Invoice/Bill Date","Due Date","Reference","Untaxed Amount Signed","Total Signed",'
               '"Total in Currency Signed","Amount Due Signed","Currency","Status"\n'
               '"INV/2099/00031","Bakery Ltd","2099-01-20","2099-02-19","PO-55","460.00","552.00","600.00","552.00",'
               '"USD","Posted"\n')


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_odoo_exports_take_the_number_not_the_customers_reference(creditor, engine, tmp_path):
    # Odoo exports its "Number" next to a "Reference" (the customer's order): the number is the invoice's
    job = _run_text(creditor, tmp_path, "factures.csv", ODOO_FR, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    invoice = Invoice.objects.get(creditor=creditor, external_ref="FAC/2099/00012")
    assert (invoice.amount_total, invoice.amount_paid) == (Decimal("1200.00"), Decimal("200.00"))
    assert invoice.customer.name == "Garage Martin" and invoice.issue_date == dt.date(2099, 1, 15)
    assert not Invoice.objects.filter(creditor=creditor, external_ref="BC-7781").exists()
    # and of its signed amounts, only the one in the invoice's currency is read
    job = _run_text(creditor, tmp_path, "invoices.csv", ODOO_SIGNED, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    invoice = Invoice.objects.get(creditor=creditor, external_ref="INV/2099/00031")
    assert (invoice.amount_total, invoice.currency, invoice.amount_paid) == (Decimal("600.00"), "USD", Decimal("0"))


DOLIBARR_EXPORT = ('"Id tiers";"Raison sociale";"Code client";"Code comptable client";"Id facture";"Réf. facture";'
                   '"Réf. client";"Date facturation";"Date échéance";"Total HT";"Total TTC";"Total TVA";'
                   '"Facture payée";"Statut facture"\r\n'
                   '"12";"Garage Martin";"CU2401-00012";"411GARMAR";"88";"FA9901-0007";"BC-7781";"2099-01-15";'
                   '"2099-02-14";"1000.00000000";"1200.00000000";"200.00000000";"0";"1"\r\n'
                   '"14";"Cabinet Durand";"CU2401-00014";"411CABDUR";"89";"FA9901-0008";"BC-7781";"2099-01-16";'
                   '"2099-02-15";"100.00000000";"120.00000000";"20.00000000";"0";"1"\r\n')


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_dolibarr_invoice_export(creditor, engine, tmp_path):
    # Dolibarr's export module: "Réf. facture" is the number; "Réf. client" is the customer's own
    # reference (an order), not the customer's code; amounts have eight decimals.
    job = _run_text(creditor, tmp_path, "export_facture_1.csv", DOLIBARR_EXPORT, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    first = Invoice.objects.get(creditor=creditor, external_ref="FA9901-0007")
    assert (first.amount_total, first.issue_date, first.due_date) == (Decimal("1200.00"), dt.date(2099, 1, 15),
                                                                      dt.date(2099, 2, 14))
    assert (first.customer.external_ref, first.customer.name) == ("CU2401-00012", "Garage Martin")
    second = Invoice.objects.get(creditor=creditor, external_ref="FA9901-0008")
    assert (second.customer.external_ref, second.amount_total) == ("CU2401-00014", Decimal("120.00"))


XERO_LINES = ("ContactName,EmailAddress,InvoiceNumber,Reference,InvoiceDate,DueDate,Total,TaxTotal,InvoiceAmountPaid,"
              "InvoiceAmountDue,Description,Quantity,UnitAmount,LineAmount,AccountCode,TaxType,Currency,Type,Status\n"
              "Garage Martin,compta@garage-martin.example,INV-0012,PO-7781,15/01/2099,14/02/2099,1200.00,200.00,"
              "200.00,1000.00,Révision,1,1000.00,1000.00,200,20% (VAT on Income),EUR,Sales invoice,AUTHORISED\n"
              "Cabinet Durand,cd@durand.example,INV-0013,,16/01/2099,15/02/2099,120.00,20.00,0.00,120.00,Conseil,1,"
              "100.00,100.00,200,20% (VAT on Income),EUR,Sales invoice,AUTHORISED\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_xero_sales_account_code_is_not_the_customer(creditor, engine, tmp_path):
    # Xero's "AccountCode" is the sales ledger account, the same on every invoice: taken as the
    # customer's code, it made every invoice one customer's.
    job = _run_text(creditor, tmp_path, "xero.csv", XERO_LINES, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    martin = Invoice.objects.get(creditor=creditor, external_ref="INV-0012")
    durand = Invoice.objects.get(creditor=creditor, external_ref="INV-0013")
    assert (martin.customer.external_ref, durand.customer.external_ref) == ("Garage Martin", "Cabinet Durand")
    assert (martin.amount_total, martin.amount_paid, durand.amount_total) == (Decimal("1200.00"), Decimal("200.00"),
                                                                              Decimal("120.00"))
    assert Customer.objects.filter(creditor=creditor).count() == 2


XERO_TWO_LINES = XERO_LINES + (
    "Garage Martin,compta@garage-martin.example,INV-0012,PO-7781,15/01/2099,14/02/2099,1200.00,200.00,"
    "200.00,1000.00,Pièces,2,100.00,200.00,200,20% (VAT on Income),EUR,Sales invoice,AUTHORISED\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_an_export_with_a_row_per_invoice_line_imports_each_invoice_once(creditor, engine, tmp_path, settings):
    # given Xero's invoice export: one row per line, the invoice's values repeated on each
    settings.LANGUAGE_CODE = "en"
    job = _run_text(creditor, tmp_path, "xero_lines.csv", XERO_TWO_LINES, engine=engine)
    # then INV-0012 is one invoice, its first line's label, and the job says why a row is left
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert (job.rows_total, job.invoices_created) == (2, 2)
    invoice = Invoice.objects.get(creditor=creditor, external_ref="INV-0012")
    assert (invoice.amount_total, invoice.description) == (Decimal("1200.00"), "Révision")
    assert job.message == "1 row is a further line of an invoice above: its invoice was imported once."
    # but a line whose invoice-level values differ is the error it always was
    clash = XERO_TWO_LINES.replace(",1200.00,200.00,\n", ",1300.00,200.00,\n").replace(
        "INV-0012,PO-7781,15/01/2099,14/02/2099,1200.00,200.00,200.00,1000.00,Pièces",
        "INV-0012,PO-7781,15/01/2099,14/02/2099,1300.00,200.00,200.00,1000.00,Pièces")
    job = _run_text(creditor, tmp_path, "xero_clash.csv", clash, engine=engine)
    assert job.status == ImportJob.Status.FAILED
    assert job.errors == [{"row": 4, "column": "InvoiceNumber", "message": "Invoice number INV-0012 is already on row 2."}]


ZOHO_BOOKS = ("Invoice Date,Invoice ID,Invoice Number,Invoice Status,Customer ID,Customer Name,Due Date,PurchaseOrder,"
              "Currency Code,SubTotal,Total,Balance\n"
              "2099-01-15,4620000000012345,INV-000012,Overdue,4620000000000777,Acme Inc,2099-02-14,PO-7781,USD,"
              "1000.00,1200.00,1000.00\n")
BUSINESS_CENTRAL = ("Posting Date,Document Type,Document No.,External Document No.,Customer No.,Customer Name,"
                    "Description,Currency Code,Original Amount,Amount,Remaining Amount,Due Date,Open\n"
                    "15/01/2099,Invoice,103012,PO-7781,C00010,Garage Martin,Order 101003,,1200.00,1200.00,1000.00,"
                    "14/02/2099,Yes\n"
                    "16/01/2099,Invoice,103013,,C00020,London Tea Ltd,Order 101004,GBP,300.00,300.00,300.00,"
                    "15/02/2099,Yes\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_currency_code_columns_and_ledger_entries(creditor, engine, tmp_path):
    # Zoho and Business Central name the currency "Currency Code": read as the default
    # currency, a USD invoice became a EUR one. Business Central's customer ledger entries also
    # say "Remaining Amount" and "Posting Date".
    job = _run_text(creditor, tmp_path, "Invoice.csv", ZOHO_BOOKS, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    zoho = Invoice.objects.get(creditor=creditor, external_ref="INV-000012")
    assert (zoho.currency, zoho.amount_total, zoho.amount_paid) == ("USD", Decimal("1200.00"), Decimal("200.00"))
    assert zoho.customer.external_ref == "4620000000000777"
    job = _run_text(creditor, tmp_path, "Customer Ledger Entries.csv", BUSINESS_CENTRAL, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    local = Invoice.objects.get(creditor=creditor, external_ref="103012")
    assert (local.currency, local.amount_total, local.amount_paid, local.issue_date) == (
        "EUR", Decimal("1200.00"), Decimal("200.00"), dt.date(2099, 1, 15))
    assert local.customer.external_ref == "C00010"
    assert Invoice.objects.get(creditor=creditor, external_ref="103013").currency == "GBP"


SAP_FBL5N = ("Account;Name 1;Assignment;Document Number;Document Type;Document Date;Net due date;"
             "Amount in local currency;Local Currency;Reference;Text\r\n"
             "100023;Garage Martin;0090001234;1800000123;RV;15.01.2099;14.02.2099;1.200,00;EUR;0090001234;"
             "Révision\r\n")
CHARGEBEE = ("Invoice Number,Invoice Date,Customer Id,Customer First Name,Customer Last Name,Customer Email,"
             "Customer Company,Amount,Amount Paid,Amount Adjusted,Credits Applied,Amount Due,Currency,Status,Due Date\n"
             "1042,15-Jan-2099,cust_7781,Jean,Martin,jean@garage-martin.example,Garage Martin,1200.00,200.00,0.00,"
             "0.00,1000.00,EUR,Payment Due,14-Feb-2099\n")
FRESHBOOKS = ("Client Name,Invoice #,Date Issued,Due Date,Invoice Status,Currency,Amount,Outstanding\n"
              "Fleurs Lambert,0000012,2099-01-15,2099-02-14,partial,EUR,300.00,100.00\n")
AXONAUT = ("Numéro;Date;Date d'échéance;Entreprise;Montant HT;Montant TTC;Montant payé;Reste à payer;Statut\r\n"
           "FA-00012;15/01/2099;14/02/2099;Boulangerie Petit;1000,00;1200,00;200,00;1000,00;Partiellement payée\r\n")
EBP = ("N° de document;Date;Code client;Nom du client;Total HT;Total TTC;Net à payer;Montant restant dû;"
       "Date d'échéance\r\n"
       "FA00012;15/01/2099;CL0042;Menuiserie Gérard;500,00;600,00;600,00;600,00;14/02/2099\r\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_company_and_document_number_names_of_other_tools(creditor, engine, tmp_path):
    # SAP FBL5N ("Net due date", "Amount in local currency", "Name 1"), Chargebee ("Customer
    # Company"), FreshBooks ("Client Name", "Date Issued"), Axonaut ("Entreprise") and EBP
    # ("N° de document"): each missed a required column.
    expected = {
        "sap.csv": (SAP_FBL5N, "0090001234", "100023", "Garage Martin", Decimal("1200.00"), Decimal("0"),
                    dt.date(2099, 2, 14)),
        "chargebee.csv": (CHARGEBEE, "1042", "cust_7781", "Garage Martin", Decimal("1200.00"), Decimal("200.00"),
                          dt.date(2099, 2, 14)),
        "freshbooks.csv": (FRESHBOOKS, "0000012", "Fleurs Lambert", "Fleurs Lambert", Decimal("300.00"),
                           Decimal("200.00"), dt.date(2099, 2, 14)),
        "axonaut.csv": (AXONAUT, "FA-00012", "Boulangerie Petit", "Boulangerie Petit", Decimal("1200.00"),
                        Decimal("200.00"), dt.date(2099, 2, 14)),
        "ebp.csv": (EBP, "FA00012", "CL0042", "Menuiserie Gérard", Decimal("600.00"), Decimal("0"),
                    dt.date(2099, 2, 14)),
    }
    for name, (text, ref, customer_ref, customer_name, amount, paid, due) in expected.items():
        job = _run_text(creditor, tmp_path, name, text, engine=engine)
        assert job.status == ImportJob.Status.SUCCEEDED, (name, job.errors)
        invoice = Invoice.objects.get(creditor=creditor, external_ref=ref)
        assert (invoice.customer.external_ref, invoice.customer.name, invoice.amount_total, invoice.amount_paid,
                invoice.due_date, invoice.issue_date) == (customer_ref, customer_name, amount, paid, due,
                                                          dt.date(2099, 1, 15)), name


QUICKBOOKS_AGING = (",Date,Transaction Type,Num,Customer,Due Date,Amount,Open Balance\n"
                    "Current,,,,,,,\n"
                    ",15/01/2099,Invoice,1001,Fleurs Lambert,14/02/2099,120.00,120.00\n"
                    "Total for Current,,,,,,120.00,120.00\n"
                    "1 - 30 days past due,,,,,,,\n"
                    ",15/12/2098,Invoice,0998,Garage Roux,14/01/2099,80.00,30.00\n"
                    ",,,1002,,,,\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_an_aged_balance_report_leaves_out_its_section_headings_and_says_so(creditor, engine, tmp_path, settings):
    # given QuickBooks' aged receivables detail: section headings in the first, unnamed column
    settings.LANGUAGE_CODE = "en"
    text = QUICKBOOKS_AGING.replace(",,,1002,,,,\n", "")
    job = _run_text(creditor, tmp_path, "aging.csv", text, engine=engine)
    # then the invoices are in, the headings and the total are said, not imported
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert set(Invoice.objects.filter(creditor=creditor).values_list("external_ref", flat=True)) == {"1001", "0998"}
    assert "Rows 2, 5 read as section headings of a report (“Current”…)" in job.message
    assert "Row 4 reads as a totals row (“Total for Current”)" in job.message
    # but a lone invoice number is a row with missing fields, not a heading
    job = _run_text(creditor, tmp_path, "aging2.csv", QUICKBOOKS_AGING, engine=engine)
    assert job.status == ImportJob.Status.FAILED
    assert {e["row"] for e in job.errors} == {7}


QUICKBOOKS_US = ("Num,Customer,Date,Due Date,Amount,Open Balance\n"
                 "2001,Flowers & Co,01/05/2099,02/04/2099,120.00,120.00\n"
                 "2002,Flowers & Co,01/20/2099,02/19/2099,80.00,80.00\n")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_a_file_writing_dates_month_first_is_read_so_and_says_it(creditor, engine, tmp_path, settings):
    # given a US export: 01/20/2099 can only be January 20th, so 01/05/2099 is January 5th too
    settings.LANGUAGE_CODE = "en"
    job = _run_text(creditor, tmp_path, "qb_us.csv", QUICKBOOKS_US, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    first = Invoice.objects.get(creditor=creditor, external_ref="2001")
    assert (first.issue_date, first.due_date) == (dt.date(2099, 1, 5), dt.date(2099, 2, 4))
    assert job.message == "Dates were read month first (12/31/2026), as this file writes them."
    # a file that says nothing either way stays day first, French style
    ambiguous = ("Num,Customer,Date,Due Date,Amount\n3001,Fleurs Lambert,01/05/2099,09/06/2099,120.00\n"
                 "3002,Fleurs Lambert,03/05/2099,10/06/2099,80.00\n")
    job = _run_text(creditor, tmp_path, "ambiguous.csv", ambiguous, engine=engine)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert Invoice.objects.get(creditor=creditor, external_ref="3001").issue_date == dt.date(2099, 5, 1)
    # and a file mixing both is not guessed: the month-first rows are errors that say what to do
    mixed = QUICKBOOKS_US.replace("2001,", "4001,").replace("2002,", "4002,").replace("02/04/2099", "25/02/2099")
    job = _run_text(creditor, tmp_path, "mixed.csv", mixed, engine=engine)
    assert job.status == ImportJob.Status.FAILED
    assert [e["row"] for e in job.errors if "month first" in e["message"]] == [3, 3]


EXCEL_SAVE_AS = (
    "Numéro;Code client;Raison sociale;Montant TTC;Date facture;Échéance\r\n"
    "FM-1;C-É1;Café Zoé;1 234,56 €;23/11/2026;23/12/2026\r\n"
    "FM-2;C-É2;Boulangerie Lefèvre & Fils;(12,00);23/11/2026;23/12/2026\r\n"
    "FM-3;C-É3;Ölwerk Müller;99,90;23/11/2026;23/12/2026\r\n")


@pytest.mark.django_db
@pytest.mark.parametrize("encoding, told", [
    ("mac_roman", "The file was read as Mac Roman (Excel for Mac) text."),
    ("cp850", "The file was read as DOS code page 850 (Excel's MS-DOS CSV) text."),
    ("utf-16", ""),
    ("cp1252", "")])
def test_csv_saved_by_excel_for_mac_dos_or_as_unicode_text(creditor, tmp_path, settings, encoding, told):
    # given the same sheet saved as "CSV (Macintosh)", "CSV (MS-DOS)", "Unicode text" (UTF-16,
    # tab-separated) or plain "CSV" by Excel; a negative in the accounting format "(12,00)"
    settings.LANGUAGE_CODE = "en"
    text = EXCEL_SAVE_AS.replace(";", "\t") if encoding == "utf-16" else EXCEL_SAVE_AS
    if encoding == "cp850":
        text = text.replace(" €", "")  # DOS code page 850 has no euro sign
    # when
    job = run_bytes(creditor, tmp_path, "excel.csv", text.encode(encoding), engine="orm",
                    mode=ImportJob.Mode.VALID_ROWS)
    # then the accented headers are recognised and names come out right
    assert job.rows_valid == 2, job.errors
    assert job.errors == [{"row": 3, "column": "Montant TTC", "message": "The amount must be greater than zero."}]
    invoice = Invoice.objects.get(creditor=creditor, external_ref="FM-1")
    assert (invoice.customer.name, invoice.customer.external_ref) == ("Café Zoé", "C-É1")
    assert invoice.amount_total == Decimal("1234.56")
    assert Invoice.objects.get(creditor=creditor, external_ref="FM-3").customer.name == "Ölwerk Müller"
    assert job.message == told


def _workbook_as_generators_write_it(path: Path) -> None:
    """A workbook as some ERP generators write it: a used range of "A1" and amounts computed
    in floating point (119.99999999999999, which Excel shows as 120.00)."""
    import re
    import zipfile

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["N° facture", "Code client", "Client", "Montant TTC", "Date facture", "Échéance"])
    sheet.append(["WB-1", "K1", "Dupont", 120, dt.datetime(2026, 11, 23), dt.datetime(2026, 12, 23)])
    sheet.append(["WB-2", "K2", "Martin", 1234.56, dt.datetime(2026, 11, 23), dt.datetime(2026, 12, 23)])
    sheet.append(["WB-3", "K3", "Durand", 0.3, dt.datetime(2026, 11, 23), dt.datetime(2026, 12, 23)])
    plain = path.with_suffix(".plain.xlsx")
    book.save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1"/>', data)
                data = data.replace(b"<v>120</v>", b"<v>119.99999999999999</v>")
                data = data.replace(b"<v>1234.56</v>", b"<v>1234.5600000000002</v>")
                data = data.replace(b"<v>0.3</v>", b"<v>0.30000000000000004</v>")
            target.writestr(item, data)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_a_workbook_with_a_wrong_used_range_and_computed_amounts(creditor, engine, tmp_path):
    # given
    path = tmp_path / "generated.xlsx"
    _workbook_as_generators_write_it(path)
    # when
    job = run_path(creditor, path, engine=engine)
    # then every row is read, each amount as Excel shows it
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    amounts = dict(Invoice.objects.filter(creditor=creditor).values_list("external_ref", "amount_total"))
    assert amounts == {"WB-1": Decimal("120.00"), "WB-2": Decimal("1234.56"), "WB-3": Decimal("0.30")}
