"""The three back-office roles, checked through the real admin."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from config.roles import roles_sync
from tests.factories import make_invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def login():
    roles_sync()

    def make(role: str) -> Client:
        user = get_user_model().objects.create_user(username=f"u-{role}", password="pw", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client = Client()
        client.force_login(user)
        return client

    return make


def test_roles_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {"finance", "operator", "auditor"}


def test_finance_can_do_everything(login, customer):
    client = login("finance")
    invoice = make_invoice(customer)
    assert client.get("/admin/collections_app/invoice/").status_code == 200
    assert client.get(f"/admin/collections_app/invoice/{invoice.pk}/change/").status_code == 200
    assert client.get("/admin/collections_app/creditor/add/").status_code == 200
    assert client.get("/admin/collections_app/apikey/add/").status_code == 200
    assert client.get("/admin/notifications/event/").status_code == 200


def test_operator_works_customers_pay_links_and_plans_but_not_invoices(login, customer):
    client = login("operator")
    invoice = make_invoice(customer)
    assert client.get("/admin/collections_app/customer/add/").status_code == 200
    assert client.get("/admin/collections_app/paymentrequest/add/").status_code == 200
    assert client.get("/admin/collections_app/installmentplan/add/").status_code == 200
    assert client.get("/admin/collections_app/invoice/").status_code == 200  # can read
    response = client.post(f"/admin/collections_app/invoice/{invoice.pk}/change/", {"amount_total": "1.00"})
    assert response.status_code == 403
    assert client.get("/admin/collections_app/creditor/add/").status_code == 403
    assert client.get("/admin/collections_app/apikey/add/").status_code == 403


def test_operator_creates_a_customer_through_the_service(login, creditor):
    client = login("operator")
    response = client.post("/admin/collections_app/customer/add/", {
        "creditor": creditor.pk, "external_ref": "OP-1", "name": "Par Téléphone", "locale": "fr",
        "time_zone": "Europe/Paris", "country": "FR", "tags": "[]", "currency": "EUR",
        "invoices-TOTAL_FORMS": "0", "invoices-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content[:2000]
    from notifications.models import Event

    assert Event.objects.filter(type="customer.created", payload__customer_external_ref="OP-1").exists()


def test_auditor_reads_everything_and_changes_nothing(login, customer):
    client = login("auditor")
    invoice = make_invoice(customer)
    assert client.get("/admin/collections_app/invoice/").status_code == 200
    assert client.get(f"/admin/collections_app/invoice/{invoice.pk}/change/").status_code == 200
    assert client.get("/admin/collections_app/customer/add/").status_code == 403
    response = client.post(f"/admin/collections_app/invoice/{invoice.pk}/change/", {"amount_total": "1.00"})
    assert response.status_code == 403
    response = client.post("/admin/collections_app/invoice/", {"action": "cancel_invoices",
                                                               "_selected_action": [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == "open"


def test_invoice_page_shows_the_event_timeline(login, customer):
    client = login("finance")
    invoice = make_invoice(customer)
    page = client.get(f"/admin/collections_app/invoice/{invoice.pk}/change/").content.decode()
    assert "invoice.created" in page and "encaisse-timeline" in page
    page = client.get(f"/admin/collections_app/customer/{customer.pk}/change/").content.decode()
    assert "customer.created" in page


def test_admin_search_by_reference_email_and_iban(login, customer):
    from collections_app import services

    client = login("finance")
    invoice = make_invoice(customer, ref="FAC-SEARCH-1")
    services.mandate_create(creditor=customer.creditor, customer=customer, holder_name="X",
                            iban="FR1420041010050500013M02606")
    assert "FAC-SEARCH-1" in client.get("/admin/collections_app/invoice/?q=FAC-SEARCH").content.decode()
    assert customer.name in client.get(f"/admin/collections_app/customer/?q={customer.email}").content.decode()
    assert customer.name in client.get("/admin/collections_app/customer/?q=FR1420041010050500013M02606"
                                       ).content.decode()
    assert invoice.external_ref
