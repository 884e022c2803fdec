"""Project-level guarantees: migrations, docs in sync, OpenAPI, commands, i18n, schedules."""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def test_no_missing_migrations():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits non-zero if anything is missing


def test_events_doc_is_generated_from_the_catalog():
    from notifications.catalog import render_markdown

    doc = Path(settings.BASE_DIR / "docs" / "events.md").read_text(encoding="utf-8")
    assert doc == render_markdown(), "docs/events.md is stale: run `python manage.py events_doc`"


def test_openapi_schema_and_offline_docs(client: Client):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    for resource in ("customers", "invoices", "payment-requests", "payments", "refunds", "instalment-plans",
                     "mandates", "events"):
        assert f"/api/v1/{resource}/" in paths
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs
    assert "cdn" not in docs.lower() and "unpkg" not in docs.lower() and "jsdelivr" not in docs.lower()


def test_seed_demo_is_idempotent():
    from collections_app.models import Customer, Invoice, PaymentRequest

    call_command("seed_demo", stdout=StringIO())
    counts = (Customer.objects.count(), Invoice.objects.count(), PaymentRequest.objects.count())
    call_command("seed_demo", stdout=StringIO())
    assert (Customer.objects.count(), Invoice.objects.count(), PaymentRequest.objects.count()) == counts
    assert counts[1] > 0


def test_create_api_key_prints_json_last():
    out = StringIO()
    call_command("create_api_key", "erp", "--json", stdout=out)
    data = json.loads(out.getvalue().strip().splitlines()[-1])
    assert data["ok"] is True and data["key"].startswith("enc_")
    from collections_app.api.auth import api_key_lookup

    assert api_key_lookup(data["key"]).name == "erp"


def test_setup_schedules_is_idempotent():
    from django_q.models import Schedule

    call_command("setup_schedules", stdout=StringIO())
    first = set(Schedule.objects.values_list("name", "func"))
    out = StringIO()
    call_command("setup_schedules", "--json", stdout=out)
    assert set(Schedule.objects.values_list("name", "func")) == first
    assert json.loads(out.getvalue().splitlines()[-1])["created"] == []


def test_every_scheduled_function_exists():
    from django.utils.module_loading import import_string

    from config.schedules import SCHEDULES

    for item in SCHEDULES:
        assert callable(import_string(item["func"])), item["func"]


def test_admin_speaks_french_and_english(admin_client):
    admin_client.post("/i18n/setlang/", {"language": "fr", "next": "/admin/"})
    page = admin_client.get("/admin/collections_app/invoice/").content.decode()
    assert "Factures" in page
    admin_client.post("/i18n/setlang/", {"language": "en", "next": "/admin/"})
    page = admin_client.get("/admin/collections_app/invoice/").content.decode()
    assert "Invoices" in page


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
