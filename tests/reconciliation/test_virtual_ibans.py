from __future__ import annotations

import threading

import pytest
from django.db import connection
from schwifty import IBAN

from collections_app.errors import InvalidTransition
from collections_app.selectors import transfer_beneficiary
from collections_app.virtual_ibans.models import VirtualIBAN, VirtualIBANRange
from collections_app.virtual_ibans.services import virtual_iban_allocate, virtual_iban_deactivate
from notifications.dispatch import dispatch_pending
from tests.factories import CreditorFactory, CustomerFactory, make_invoice, make_request
from tests.processes import transaction_held_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranged(creditor):
    VirtualIBANRange.objects.create(creditor=creditor, country="FR", bank_code="30004", branch_code="00999",
                                    account_prefix="9", account_length=11)
    return creditor


def test_allocation_is_sequential_valid_and_never_reuses_a_deactivated_iban(ranged):
    a, b = CustomerFactory(creditor=ranged), CustomerFactory(creditor=ranged)
    va = virtual_iban_allocate(customer=a)
    assert virtual_iban_allocate(customer=a) == va  # idempotent
    vb = virtual_iban_allocate(customer=b)
    assert (va.number, vb.number) == (1, 2)
    for v in (va, vb):
        IBAN(v.iban).validate(validate_bban=True)
        assert v.iban.startswith("FR76300040099990")
    virtual_iban_deactivate(virtual_iban=va)
    with pytest.raises(InvalidTransition):
        virtual_iban_deactivate(virtual_iban=va)
    again = virtual_iban_allocate(customer=a)
    assert again.number == 3 and again.iban not in (va.iban, vb.iban)


def test_per_debt_mode_and_transfer_beneficiary(ranged):
    customer = CustomerFactory(creditor=ranged)
    request = make_request(customer)
    assert transfer_beneficiary(payment_request=request).virtual is False
    virtual = virtual_iban_allocate(customer=customer)
    beneficiary = transfer_beneficiary(payment_request=request)
    assert beneficiary.virtual and beneficiary.iban == virtual.iban
    VirtualIBANRange.objects.filter(creditor=ranged).update(allocation_mode="per_debt")
    other = make_request(customer)
    debt_iban = virtual_iban_allocate(customer=customer, payment_request=other)
    assert transfer_beneficiary(payment_request=other).iban == debt_iban.iban


def test_auto_allocation_on_customer_creation_through_the_outbox(ranged, api):
    response = api.post("/api/v1/customers/", {"external_ref": "VIB-1", "name": "Vera"}, format="json")
    assert response.status_code == 201, response.content
    dispatch_pending()
    virtual = VirtualIBAN.objects.get(customer_id=response.json()["id"])
    assert api.get(f"/api/v1/customers/{virtual.customer_id}/").json()["virtual_iban"] == virtual.iban
    request = make_request(virtual.customer)
    body = api.get(f"/api/v1/payment-requests/{request.pk}/").json()
    assert body["transfer"]["iban"] == virtual.iban and body["transfer"]["virtual"] is True


def test_a_payment_request_created_through_the_api_answers_with_its_virtual_iban(ranged, api):
    VirtualIBANRange.objects.filter(creditor=ranged).update(allocation_mode="per_debt")
    customer = CustomerFactory(creditor=ranged)
    invoice = make_invoice(customer, amount="75.00")
    # when: created, and answered before any worker ran the outbox
    response = api.post("/api/v1/payment-requests/", {"customer": customer.pk, "invoices": [invoice.pk]},
                        format="json")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    virtual = VirtualIBAN.objects.get(payment_request_id=body["id"])
    assert body["transfer"] == {**body["transfer"], "iban": virtual.iban, "virtual": True}
    dispatch_pending()  # the outbox consumer then finds it allocated: still one
    assert VirtualIBAN.objects.filter(payment_request_id=body["id"]).count() == 1


def test_range_without_valid_ibans_is_refused(creditor):
    from collections_app.errors import ValidationFailed

    VirtualIBANRange.objects.create(creditor=creditor, country="ZZ", bank_code="30004", branch_code="00999")
    with pytest.raises(ValidationFailed):
        virtual_iban_allocate(customer=CustomerFactory(creditor=creditor))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_allocations_never_collide():
    creditor = CreditorFactory()
    VirtualIBANRange.objects.create(creditor=creditor, country="FR", bank_code="30004", branch_code="00999",
                                    account_prefix="9", account_length=11)
    customers = [CustomerFactory(creditor=creditor) for _ in range(8)]
    errors: list[Exception] = []

    def work(customer):
        try:
            virtual_iban_allocate(customer=customer)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(c,)) for c in customers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = sorted(VirtualIBAN.objects.values_list("number", flat=True))
    assert numbers == list(range(1, 9))
    assert VirtualIBANRange.objects.get(creditor=creditor).next_number == 9


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_customer_who_has_a_virtual_iban_never_waits_behind_the_creditors_other_allocations(ranged, api):
    """The range lock is held to the end of the allocating transaction (an outbox dispatcher's
    batch of 200 events, a bulk import): a pay link for a customer who has their IBAN must not
    queue behind it. (The chaos run's API calls waited minutes there.)"""
    from connectors.services import api_import

    known = CustomerFactory(creditor=ranged)
    virtual = virtual_iban_allocate(customer=known)
    newcomer = CustomerFactory(creditor=ranged)
    # given another worker allocating (the newcomer's IBAN) in a transaction still open
    try:
        with transaction_held_open(lambda: virtual_iban_allocate(customer=newcomer)):
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '2s'")  # a wait on the range lock fails the test, not hangs it
            # when a pay link (with its transfer details) is created for the known customer meanwhile
            response = api.post("/api/v1/payment-requests/", {"customer": known.pk, "amount": "12.00"},
                                format="json")
            job, _results = api_import(creditor=ranged, items=[{
                "external_ref": "VIB-BULK-1", "customer_ref": known.external_ref, "name": known.name,
                "amount": "30.00", "due_date": "2026-12-31"}])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    # then both answer at once, with the IBAN the customer has
    assert response.status_code == 201, response.content
    assert response.json()["transfer"]["iban"] == virtual.iban
    assert job.status == "succeeded", job.message
    assert VirtualIBAN.objects.filter(customer=known).count() == 1
    assert VirtualIBAN.objects.get(customer=newcomer).number == virtual.number + 1
