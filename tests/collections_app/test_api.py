"""The REST API: authentication, idempotency keys, validation errors, filters and the event feed."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from collections_app.api.auth import api_key_create, api_key_revoke
from collections_app.models import ApiKey, Customer, IdempotencyRecord, Invoice, PaymentRequest
from tests.factories import CreditorFactory, make_invoice
from tests.processes import database_url, transaction_held_open

pytestmark = pytest.mark.django_db


def customer_body(**overrides):
    return {"external_ref": "C-API-1", "name": "Alice Martin", "email": "alice@example.fr", **overrides}


# --------------------------------------------------------------------------- authentication

def test_missing_key_is_401_with_a_json_error(creditor):
    response = APIClient().get("/api/v1/customers/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_invalid_key_is_401(creditor):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key enc_nope_nope")
    response = client.get("/api/v1/customers/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_wrong_scheme_is_401(creditor, api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")
    assert client.get("/api/v1/customers/").status_code == 401


def test_revoked_key_is_401(creditor, api, api_key):
    assert api.get("/api/v1/customers/").status_code == 200
    api_key_revoke(api_key=api_key)
    response = api.get("/api/v1/customers/")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_keys_are_stored_hashed(api_key):
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert api_key.raw not in (stored.hashed_key, stored.prefix)
    assert len(stored.hashed_key) == 64


def test_a_creditor_key_only_sees_its_creditor(creditor, customer):
    other = CreditorFactory()
    key, raw = api_key_create(name="other", creditor=other)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert client.get("/api/v1/customers/").json()["count"] == 0
    assert client.get(f"/api/v1/customers/{customer.pk}/").status_code == 404


# --------------------------------------------------------------------------- creation flow

def test_create_customer_invoice_and_payment_request(creditor, api):
    customer = api.post("/api/v1/customers/", customer_body(), format="json")
    assert customer.status_code == 201, customer.content
    invoice = api.post("/api/v1/invoices/", {
        "customer": customer.json()["id"], "external_ref": "F-2026-001", "amount_total": "120.50",
        "currency": "EUR", "issue_date": "2026-11-01", "due_date": "2026-12-01"}, format="json")
    assert invoice.status_code == 201, invoice.content
    assert invoice.json()["amount_due"] == "120.50" and invoice.json()["status"] == "open"
    request = api.post("/api/v1/payment-requests/", {
        "customer": customer.json()["id"], "invoices": [invoice.json()["id"]]}, format="json")
    assert request.status_code == 201, request.content
    body = request.json()
    assert body["amount"] == "120.50" and body["currency"] == "EUR"
    assert body["pay_url"].startswith("http") and "/pay/" in body["pay_url"]
    assert len(body["short_reference"]) == 8
    assert body["reference"] == "F-2026-001"


def test_filters_by_status_customer_and_updated_since(creditor, customer, api):
    make_invoice(customer)
    cancelled = make_invoice(customer)
    from collections_app import services

    services.invoice_cancel(invoice=cancelled)
    assert api.get("/api/v1/invoices/?status=cancelled").json()["count"] == 1
    assert api.get(f"/api/v1/invoices/?customer={customer.pk}").json()["count"] == 2
    assert api.get("/api/v1/invoices/?updated_since=2999-01-01T00:00:00Z").json()["count"] == 0


def test_event_feed_with_cursor_and_since(creditor, customer, api):
    for _ in range(3):
        make_invoice(customer)
    page = api.get("/api/v1/events/?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]
    ids = [e["id"] for e in page["results"]]
    assert ids == sorted(ids)
    rest = api.get(page["next"]).json()
    assert rest["results"][0]["id"] > ids[-1]
    since = api.get(f"/api/v1/events/?since={ids[-1]}").json()
    assert all(e["id"] > ids[-1] for e in since["results"])
    assert api.get("/api/v1/events/?since=yesterday").status_code == 400
    typed = api.get("/api/v1/events/?type=invoice.created").json()
    assert {e["type"] for e in typed["results"]} == {"invoice.created"}


def test_refund_and_plan_creation(creditor, customer, api):
    from collections_app import services

    invoice = make_invoice(customer, amount="90.00")
    request = services.payment_request_create(creditor=creditor, customer=customer, invoices=[invoice])
    plan = api.post("/api/v1/instalment-plans/", {"customer": customer.pk, "payment_request": request.pk,
                                                   "method": "card", "count": 3, "first_due_date": "2026-12-05"},
                    format="json")
    assert plan.status_code == 201, plan.content
    assert [i["amount"] for i in plan.json()["installments"]] == ["30.00", "30.00", "30.00"]
    payment = services.payment_create(customer=customer, method="card", amount="30.00", payment_request=request)
    services.payment_record_success(payment=payment)
    refund = api.post("/api/v1/refunds/", {"payment": payment.pk, "amount": "10.00", "reason": "geste"},
                      format="json")
    assert refund.status_code == 201 and refund.json()["status"] == "pending"
    too_much = api.post("/api/v1/refunds/", {"payment": payment.pk, "amount": "25.00"}, format="json")
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_exceeds_balance"
    assert "amount" in too_much.json()["error"]["fields"]


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("amount", ["-10.00", "0", "0.00", "abc", "1e400", "12.345"])
def test_bad_invoice_amounts_are_400_with_field_errors(creditor, customer, api, amount):
    response = api.post("/api/v1/invoices/", {
        "customer": customer.pk, "external_ref": "F-BAD", "amount_total": amount, "issue_date": "2026-11-01",
        "due_date": "2026-12-01"}, format="json")
    assert response.status_code == 400
    assert "amount_total" in response.json()["error"]["fields"]
    assert not Invoice.objects.filter(external_ref="F-BAD").exists()


@pytest.mark.parametrize("payload,field", [
    ({"currency": "XYZ"}, "currency"),
    ({"customer": 999999}, "customer"),
    ({"customer": None}, "customer"),
    ({"issue_date": "2026-13-45"}, "issue_date"),
    ({"due_date": "01/12/2026"}, "due_date"),
    ({"due_date": "2026-10-01"}, "due_date"),  # before the issue date
])
def test_bad_invoice_fields_are_400(creditor, customer, api, payload, field):
    body = {"customer": customer.pk, "external_ref": "F-BAD", "amount_total": "10.00",
            "issue_date": "2026-11-01", "due_date": "2026-12-01", **payload}
    response = api.post("/api/v1/invoices/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("payload,field", [
    ({"amount": "-5"}, "amount"),
    ({"amount": "0"}, "amount"),
    ({"currency": "EURO"}, "currency"),
    ({"customer": 424242}, "customer"),
    ({"expires_at": "not a date"}, "expires_at"),
    ({"allowed_methods": ["cash"]}, "allowed_methods"),
    ({"amount": None, "invoices": []}, "amount"),
])
def test_bad_payment_requests_are_400(creditor, customer, api, payload, field):
    body = {"customer": customer.pk, "amount": "10.00", **payload}
    response = api.post("/api/v1/payment-requests/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not PaymentRequest.objects.exists()


@pytest.mark.parametrize("payload,field", [
    ({"currency": "ABC"}, "currency"),
    ({"email": "not-an-email"}, "email"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"name": ""}, "name"),
    ({"external_ref": ""}, "external_ref"),
])
def test_bad_customers_are_400(creditor, api, payload, field):
    response = api.post("/api/v1/customers/", customer_body(**payload), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("payload,field", [
    ({"amount": "-1"}, "amount"),
    ({"amount": "0"}, "amount"),
    ({"payment": 99999}, "payment"),
    ({"payment": None}, "payment"),
])
def test_bad_refunds_are_400(creditor, customer, api, payload, field):
    response = api.post("/api/v1/refunds/", {"payment": 1, "amount": "1.00", **payload}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("payload,field", [
    ({"customer": 99999}, "customer"),
    ({"method": "cash"}, "method"),
    ({"schedule": [{"due_date": "2026-12-01", "amount": "-3"}, {"due_date": "2026-13-01", "amount": "3"}]},
     "schedule"),
])
def test_bad_instalment_plans_are_400(creditor, customer, api, payload, field):
    body = {"customer": customer.pk, "method": "card",
            "schedule": [{"due_date": "2026-12-01", "amount": "10"}, {"due_date": "2027-01-01", "amount": "10"}],
            **payload}
    response = api.post("/api/v1/instalment-plans/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_malformed_json_is_400(creditor, api):
    response = api.post("/api/v1/customers/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_duplicate_reference_is_409(creditor, api):
    assert api.post("/api/v1/customers/", customer_body(), format="json").status_code == 201
    response = api.post("/api/v1/customers/", customer_body(), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate_reference"
    assert Customer.objects.count() == 1


# --------------------------------------------------------------------------- idempotency keys

def test_same_key_same_body_replays_the_stored_response(creditor, api):
    first = api.post("/api/v1/customers/", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = api.post("/api/v1/customers/", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second["Idempotent-Replayed"] == "true"
    assert Customer.objects.count() == 1


def test_same_key_different_body_is_422(creditor, api):
    api.post("/api/v1/customers/", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    response = api.post("/api/v1/customers/", customer_body(name="Bob"), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_keys_are_scoped_per_api_key(creditor, api):
    api.post("/api/v1/customers/", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    _key, raw = api_key_create(name="other")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    response = other.post("/api/v1/customers/", customer_body(external_ref="C-API-2"), format="json",
                          HTTP_IDEMPOTENCY_KEY="k-3")
    assert response.status_code == 201


def _claim(api_key, key: str, body: bytes, path: str = "/api/v1/customers/") -> IdempotencyRecord:
    import hashlib

    return IdempotencyRecord.objects.create(api_key=api_key, key=key, method="POST", path=path,
                                            request_hash=hashlib.sha256(b"POST\n" + path.encode() + b"\n" + body)
                                            .hexdigest())


def test_a_key_in_progress_with_another_body_is_422(creditor, api, api_key):
    import json

    _claim(api_key, "k-4", json.dumps(customer_body(name="Bob")).encode())
    response = api.post("/api/v1/customers/", json.dumps(customer_body()), content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="k-4")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_key_held_by_a_live_request_is_409(creditor, api, api_key):
    import json

    body = json.dumps(customer_body()).encode()
    record = _claim(api_key, "k-live", body)
    # given another request working under that key (it holds the claim's lock)
    with transaction_held_open(lambda: IdempotencyRecord.objects.select_for_update().get(pk=record.pk)):
        # when the client sends it again meanwhile
        response = api.post("/api/v1/customers/", body, content_type="application/json",
                            HTTP_IDEMPOTENCY_KEY="k-live")
    # then it is told to wait, and nothing is created twice
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_request_in_progress"
    assert not Customer.objects.exists()


def test_a_key_in_progress_on_a_database_without_row_locks_is_409(creditor, api, api_key, monkeypatch):
    """Without NOWAIT row locks (SQLite) a dead request cannot be told from a live one: wait."""
    import json

    monkeypatch.setattr(connection.features, "has_select_for_update_nowait", False)
    body = json.dumps(customer_body()).encode()
    _claim(api_key, "k-4b", body)
    response = api.post("/api/v1/customers/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-4b")
    assert response.status_code == 409
    assert not Customer.objects.exists()


KILLED_REQUEST = """
import os, sys, time, django
django.setup()
from collections_app import services
real = services.customer_create
def customer_create(**kwargs):
    customer = real(**kwargs)   # written in the request's transaction, not committed yet
    print("created", flush=True)
    time.sleep(60)              # ... and the web worker is killed here (timeout, OOM, deploy)
services.customer_create = customer_create
from rest_framework.test import APIClient
client = APIClient()
client.credentials(HTTP_AUTHORIZATION="Api-Key " + os.environ["API_KEY"])
client.post("/api/v1/customers/", sys.stdin.read(), content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="k-killed")
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_killed_mid_way_leaves_nothing_and_its_retry_runs_once(creditor, api, api_key):
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    url = database_url()
    body = json.dumps(customer_body())
    # given a web worker handling a POST with an Idempotency-Key, killed in the middle of its work
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_REQUEST], cwd=Path(__file__).resolve().parents[2], text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test",
             "API_KEY": api_key.raw})
    try:
        worker.stdin.write(body)
        worker.stdin.close()
        assert worker.stdout.readline().strip() == "created", worker.stderr.read()[-3000:]
        # while it works, a retry is told to wait
        assert api.post("/api/v1/customers/", body, content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="k-killed").status_code == 409
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert IdempotencyRecord.objects.get(key="k-killed").state == IdempotencyRecord.State.IN_PROGRESS
    assert not Customer.objects.exists()  # its work died with it
    # when the client retries with the same key
    retry = api.post("/api/v1/customers/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-killed")
    again = api.post("/api/v1/customers/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-killed")
    # then the request runs (once), and later retries get its answer
    assert retry.status_code == 201, retry.content
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true" and again.content == retry.content
    assert Customer.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_server_error_keeps_none_of_the_work_and_frees_the_key(creditor, api, monkeypatch):
    from collections_app import services

    real = services.customer_create

    def broken(**kwargs):
        real(**kwargs)
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(services, "customer_create", broken)
    api.raise_request_exception = False
    failed = api.post("/api/v1/customers/", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-500")
    assert failed.status_code == 500
    assert not Customer.objects.exists() and not IdempotencyRecord.objects.filter(key="k-500").exists()
    monkeypatch.setattr(services, "customer_create", real)
    assert api.post("/api/v1/customers/", customer_body(), format="json",
                    HTTP_IDEMPOTENCY_KEY="k-500").status_code == 201
    assert Customer.objects.count() == 1


def test_validation_errors_are_replayed_too_and_5xx_release_the_key(creditor, api):
    bad = api.post("/api/v1/customers/", customer_body(email="nope"), format="json", HTTP_IDEMPOTENCY_KEY="k-5")
    again = api.post("/api/v1/customers/", customer_body(email="nope"), format="json", HTTP_IDEMPOTENCY_KEY="k-5")
    assert bad.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"


def test_expired_keys_can_be_reused(creditor, api):
    import datetime as dt

    from django.utils import timezone

    api.post("/api/v1/customers/", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-6")
    IdempotencyRecord.objects.filter(key="k-6").update(created_at=timezone.now() - dt.timedelta(hours=25))
    response = api.post("/api/v1/customers/", customer_body(external_ref="C-API-9"), format="json",
                        HTTP_IDEMPOTENCY_KEY="k-6")
    assert response.status_code == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_one_object(creditor, api_key):
    # given two clients posting the same request with the same key at the same time
    results = []
    barrier = threading.Barrier(4)

    def post():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key.raw}")
        barrier.wait()
        try:
            results.append(client.post("/api/v1/customers/", customer_body(), format="json",
                                       HTTP_IDEMPOTENCY_KEY="race").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then one created it; the others were replayed (201) or told it was in progress (409)
    assert set(results) <= {201, 409} and 201 in results
    assert Customer.objects.filter(external_ref="C-API-1").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_payments_cannot_over_collect(creditor, customer):
    from collections_app import services

    invoice = make_invoice(customer, amount="100.00")
    request = services.payment_request_create(creditor=creditor, customer=customer, invoices=[invoice])
    outcomes = []
    barrier = threading.Barrier(2)

    def pay():
        barrier.wait()
        try:
            payment = services.payment_create(customer=customer, method="card", amount="70.00",
                                              payment_request=request)
            services.payment_record_success(payment=payment)
            outcomes.append("paid")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=pay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    request.refresh_from_db()
    assert sorted(outcomes) == ["AmountExceedsBalance", "paid"]
    assert request.amount_paid == Decimal("70.00")
