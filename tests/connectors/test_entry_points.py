"""The ways invoices come in (API, command, drop folder) and statuses go out (status files)."""
from __future__ import annotations

import csv
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from collections_app import services as core
from collections_app.api.auth import api_key_create
from collections_app.models import Invoice, PaymentRequest
from connectors.exports import export_cursor_create, status_file_write
from connectors.models import ColumnMapping, ExportJob, ImportJob
from connectors.tasks import poll_drop_folder
from notifications.dispatch import dispatch_pending
from rest_framework.test import APIClient

FILES = Path(__file__).parent / "files"


def rows(n=3, prefix="API"):
    return [{"external_ref": f"{prefix}-{i}", "customer_ref": f"K{i % 2}", "name": f"Client {i % 2}",
             "email": f"k{i % 2}@example.fr", "amount": "10.50", "currency": "EUR", "issue_date": "2026-03-01",
             "due_date": "2026-03-31"} for i in range(n)]


@pytest.fixture
def bound_api(creditor):
    _key, raw = api_key_create(name="erp", creditor=creditor)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


@pytest.mark.django_db
def test_api_bulk_import_answers_per_row_with_pay_links(bound_api, creditor):
    response = bound_api.post("/api/v1/invoice-imports/", {"invoices": rows()}, format="json",
                              HTTP_IDEMPOTENCY_KEY="erp-2026-03-01")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["job"]["status"] == "succeeded" and body["job"]["invoices_created"] == 3
    assert [r["status"] for r in body["results"]] == ["created"] * 3
    request = PaymentRequest.objects.get(creditor=creditor, reference="API-0")
    first = body["results"][0]
    assert first["row"] == 1 and first["external_ref"] == "API-0"
    assert first["pay_url"] == request.pay_url and first["short_reference"] == request.short_reference
    assert first["iban"] == creditor.iban and first["virtual_iban"] == ""
    assert first["qr_code_url"].endswith(f"/pay/{request.token}/qr.png")

    replay = bound_api.post("/api/v1/invoice-imports/", {"invoices": rows()}, format="json",
                            HTTP_IDEMPOTENCY_KEY="erp-2026-03-01")
    assert replay.status_code == 201 and replay.json() == body
    again = bound_api.post("/api/v1/invoice-imports/", {"invoices": rows()}, format="json")
    assert [r["status"] for r in again.json()["results"]] == ["unchanged"] * 3
    assert again.json()["results"][0]["pay_url"] == request.pay_url
    assert Invoice.objects.filter(creditor=creditor).count() == 3


@pytest.mark.django_db
def test_api_bulk_import_records_what_the_erp_received_outside(bound_api, creditor):
    items = rows(3, prefix="BAL")
    items[1]["balance"] = "4.50"  # 6.00 received by the ERP (a cheque)
    items[2]["balance"] = "0"  # settled before anything was to collect
    body = bound_api.post("/api/v1/invoice-imports/", {"invoices": items}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created", "created", "already_paid"]
    assert body["results"][2]["pay_url"] == ""
    partly = Invoice.objects.get(creditor=creditor, external_ref="BAL-1")
    assert (partly.amount_paid, partly.status) == (Decimal("6.00"), "partially_paid")
    assert PaymentRequest.objects.get(creditor=creditor, reference="BAL-1").amount == Decimal("4.50")
    assert not Invoice.objects.filter(creditor=creditor, external_ref="BAL-2").exists()


@pytest.mark.django_db
def test_api_bulk_import_rejects_rows_and_limits_size(bound_api, creditor, settings):
    settings.LANGUAGE_CODE = "en"
    items = rows()
    items[1]["amount"] = "-3"
    items[2]["due_date"] = "2026-02-30"
    response = bound_api.post("/api/v1/invoice-imports/", {"invoices": items}, format="json")

    assert response.status_code == 422
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["not_imported", "rejected", "rejected"]
    assert results[1]["errors"] == [{"field": "amount", "message": "The amount must be greater than zero."}]
    assert results[2]["errors"][0]["field"] == "due_date"
    assert not Invoice.objects.filter(creditor=creditor).exists()

    partial = bound_api.post("/api/v1/invoice-imports/", {"invoices": items, "mode": "valid_rows"}, format="json")
    assert partial.status_code == 201
    assert [r["status"] for r in partial.json()["results"]] == ["created", "rejected", "rejected"]

    too_many = bound_api.post("/api/v1/invoice-imports/", {"invoices": rows(10_001, "BIG")}, format="json")
    assert too_many.status_code == 400
    assert "invoices" in too_many.json()["error"]["fields"]


@pytest.mark.django_db
def test_command_imports_with_a_saved_mapping_and_prints_json(creditor, capsys, tmp_path):
    mapping = ColumnMapping.objects.create(name="sage", creditor=creditor, columns={"Libellé": "ignore"},
                                           decimal_separator=",", date_format="%d/%m/%Y")
    call_command("import_invoices", str(FILES / "sage_cp1252_semicolon.csv"), "--mapping", "sage", "--json")
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    assert data["ok"] is True and data["invoices_created"] == 3 and data["status"] == "succeeded"
    assert Path(data["return_file"]).is_file()
    assert ImportJob.objects.get(pk=data["import_job_id"]).mapping == mapping
    # the mapping said to ignore the label column
    assert Invoice.objects.get(external_ref="FA-2026-0001").description == ""


@pytest.mark.django_db
def test_command_fails_with_the_row_errors(creditor, capsys):
    with pytest.raises(SystemExit) as exc:
        call_command("import_invoices", str(FILES / "bad_rows.csv"), "--json")
    assert exc.value.code == 1
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["ok"] is False and data["rows_rejected"] == 4 and data["invoices_created"] == 0


@pytest.mark.django_db(transaction=True)
def test_drop_folder_is_polled_and_files_move_to_done(settings, tmp_path):
    from tests.factories import CreditorFactory

    creditor = CreditorFactory()
    settings.CONNECTORS_IMPORT_DIR = tmp_path / "in"
    ColumnMapping.objects.create(name="erp-a", creditor=creditor)
    folder = tmp_path / "in" / "erp-a"
    folder.mkdir(parents=True)
    shutil.copy(FILES / "utf8_bom_english.csv", folder / "daily.csv")
    (folder / "next.csv.part").write_text("still being written")

    ids = poll_drop_folder()

    assert len(ids) == 1
    job = ImportJob.objects.get(pk=ids[0])
    assert job.status == "succeeded" and job.source == "drop_folder" and job.invoices_created == 2
    assert not (folder / "daily.csv").exists() and (folder / "next.csv.part").exists()
    assert len(list((folder / "done").iterdir())) == 1
    assert poll_drop_folder() == []


@pytest.mark.django_db(transaction=True)
def test_drop_folder_takes_back_files_a_dead_scanner_left_in_processing(settings, tmp_path):
    import fcntl

    from tests.factories import CreditorFactory

    creditor = CreditorFactory()
    settings.CONNECTORS_IMPORT_DIR = tmp_path / "in"
    ColumnMapping.objects.create(name="erp-b", creditor=creditor)
    processing = tmp_path / "in" / "erp-b" / "processing"
    processing.mkdir(parents=True)
    # given one file a scanner claimed and died on, and one a live scanner still holds
    shutil.copy(FILES / "utf8_bom_english.csv", processing / "20260304T060000-daily.csv")
    shutil.copy(FILES / "sage_cp1252_semicolon.csv", processing / "20260304T060001-a1b2c3-held.csv")
    with open(processing / "20260304T060001-a1b2c3-held.csv", "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        # when the drop folder is polled
        ids = poll_drop_folder()
    # then the abandoned file is imported under its own name, the held one is left alone
    assert [ImportJob.objects.get(pk=pk).filename for pk in ids] == ["daily.csv"]
    assert ImportJob.objects.get(pk=ids[0]).invoices_created == 2
    assert [p.name for p in processing.iterdir()] == ["20260304T060001-a1b2c3-held.csv"]
    # and once its scanner is gone, the next poll takes it
    ids = poll_drop_folder()
    assert [ImportJob.objects.get(pk=pk).filename for pk in ids] == ["held.csv"]
    assert not list(processing.iterdir())


@pytest.mark.django_db(transaction=True)
def test_a_file_whose_scanner_died_after_creating_its_job_is_not_imported_twice(settings, tmp_path):
    from django.core.files import File

    from connectors.services import drop_folder_scan, import_job_create
    from tests.factories import CreditorFactory

    creditor = CreditorFactory()
    settings.CONNECTORS_IMPORT_DIR = tmp_path / "in"
    mapping = ColumnMapping.objects.create(name="erp-c", creditor=creditor)
    processing = tmp_path / "in" / "erp-c" / "processing"
    processing.mkdir(parents=True)
    # given a scanner that claimed a file, created its job, and died before moving the file on
    claimed = processing / "20260304T060000-a1b2c3-daily.csv"
    shutil.copy(FILES / "utf8_bom_english.csv", claimed)
    with open(claimed, "rb") as handle:
        job = import_job_create(creditor=creditor, source=ImportJob.Source.DROP_FOLDER, filename="daily.csv",
                                content=File(handle, name="daily.csv"), mapping=mapping, stored_name=claimed.name)
    # when the drop folder is scanned again
    assert drop_folder_scan() == []
    # then the file is moved on without a second job, and its job runs once
    assert not list(processing.iterdir())
    assert ImportJob.objects.count() == 1
    assert poll_drop_folder() == [job.pk]
    assert ImportJob.objects.get().invoices_created == 2


@pytest.mark.django_db
def test_status_files_have_every_change_once(creditor, customer, settings, tmp_path):
    settings.CONNECTORS_EXPORT_DIR = tmp_path / "out"
    cursor = export_cursor_create(name="erp-status", creditor=creditor)
    from tests.factories import make_request

    request = make_request(customer, amount="50.00")
    dispatch_pending()
    first = status_file_write(cursor=cursor)
    payment = core.payment_create(customer=customer, method="card", amount="50.00", payment_request=request)
    core.payment_record_success(payment=payment)
    dispatch_pending()
    second = status_file_write(cursor=cursor)
    assert status_file_write(cursor=cursor) is None

    def lines(job):
        return list(csv.DictReader(io.StringIO(Path(job.path).read_text("utf-8"))))

    one, two = lines(first), lines(second)
    assert [r["type"] for r in one] == ["invoice.created", "payment_request.created"]
    assert sorted(r["type"] for r in two) == ["invoice.paid", "payment.created", "payment.succeeded",
                                              "payment_request.paid"]
    ids = [int(r["event_id"]) for r in one + two]
    assert ids == sorted(set(ids))
    paid = next(r for r in two if r["type"] == "payment_request.paid")
    assert (paid["external_ref"], paid["status"], paid["amount_due"]) == (request.reference, "paid", "0.00")
    assert ExportJob.objects.filter(cursor=cursor).count() == 2
    assert not list((tmp_path / "out" / "erp-status").glob(".*.tmp"))
    assert Decimal(paid["amount"]) == Decimal("50.00")


@pytest.mark.django_db
def test_status_file_json_format(creditor, customer, settings, tmp_path):
    settings.CONNECTORS_EXPORT_DIR = tmp_path / "out"
    cursor = export_cursor_create(name="erp-json", creditor=creditor, format="json")
    from tests.factories import make_request

    make_request(customer)
    dispatch_pending()
    job = status_file_write(cursor=cursor)
    data = json.loads(Path(job.path).read_text("utf-8"))
    assert [d["type"] for d in data] == ["invoice.created", "payment_request.created"]
    assert data[1]["payload"]["pay_url"].startswith("http")


@pytest.mark.django_db
def test_bulk_endpoint_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/?format=json").json()
    assert "post" in schema["paths"]["/api/v1/invoice-imports/"]
    assert "/api/v1/invoice-imports/{id}/errors/" in schema["paths"]


@pytest.mark.django_db
def test_unbound_key_must_name_the_creditor(api, creditor):
    response = api.post("/api/v1/invoice-imports/", {"invoices": rows(1)}, format="json")
    assert response.status_code == 400 and "creditor" in response.json()["error"]["fields"]
    response = api.post("/api/v1/invoice-imports/", {"invoices": rows(1), "creditor": creditor.pk}, format="json")
    assert response.status_code == 201
    assert api.get(f"/api/v1/invoice-imports/{response.json()['job']['id']}/").json()["invoices_created"] == 1


@pytest.mark.django_db
def test_api_error_report_and_return_file_of_a_file_import(api, creditor):
    from django.core.files import File

    from connectors.services import import_job_create, import_job_run

    with open(FILES / "bad_rows.csv", "rb") as handle:
        job = import_job_create(creditor=creditor, filename="bad.csv", content=File(handle, name="bad.csv"),
                                mode="valid_rows")
    import_job_run(job=job)
    errors = api.get(f"/api/v1/invoice-imports/{job.pk}/errors/")
    assert errors["Content-Type"].startswith("text/csv")
    assert errors.content.decode("utf-8-sig").splitlines()[0] == "row,column,message"
    returned = api.get(f"/api/v1/invoice-imports/{job.pk}/return-file/").content.decode("utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in returned] == ["external_ref", "OK-1", "OK-2"]
