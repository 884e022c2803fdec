"""What must never happen: card data stored or logged, over-collection under concurrency,
a replayed form paying twice."""
from __future__ import annotations

import logging
import re
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from collections_app import services
from collections_app.errors import AmountExceedsBalance
from collections_app.gateways.sandbox import tokenize
from collections_app.models import Mandate, Payment, PaymentRequest
from collections_app.paypages import services as pp
from collections_app.paypages.models import PaySubmission
from tests.collections_app.paypages.conftest import form_nonce
from tests.collections_app.paypages.helpers import card_pay
from tests.factories import CustomerFactory, make_request

PAN = "4000000000003220"  # 3-D Secure card: the longest path (tokenise, authorise, challenge, complete)
CVC = "7319"


def _database_text() -> str:
    """Every row of every table, as PostgreSQL prints it."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks)


def _card_data_in(text: str) -> list[str]:
    found = []
    digits_only = re.sub(r"[\s-]", "", text)
    if PAN in digits_only:
        found.append("PAN")
    if PAN[:6] + PAN[6:12] in digits_only:  # BIN and middle digits: only last4 may be kept
        found.append("PAN middle digits")
    if re.search(rf"cvc\W{{0,12}}{CVC}", text, re.IGNORECASE) or re.search(rf"{CVC}\W{{0,12}}cvc", text, re.I):
        found.append("CVC")
    return found


@pytest.mark.postgres
@pytest.mark.django_db
def test_no_pan_or_cvc_in_the_database_or_the_logs_after_a_card_payment(client, debtor, caplog):
    caplog.set_level(logging.DEBUG)  # everything, SQL statements and their parameters included
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True
    try:
        request = make_request(debtor, amount="75.00")
        response, nonce, _ = card_pay(client, request, number=PAN, cvc=CVC, save_card=True, follow_3ds=True)
    finally:
        connection.force_debug_cursor = False
    request.refresh_from_db()
    assert request.status == PaymentRequest.Status.PAID  # the payment really went through
    assert debtor.saved_cards.get().last4 == PAN[-4:]
    assert any("INSERT" in r.getMessage() for r in caplog.records), "SQL was not captured: the check is blind"
    log_text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert _card_data_in(log_text) == []
    db_text = _database_text()
    assert PAN[-4:] in db_text and nonce in db_text  # the dump does contain this payment's rows
    assert _card_data_in(db_text) == []


@pytest.mark.django_db
def test_replayed_card_post_back_does_not_pay_twice(client, pay_request):
    response, nonce, fields = card_pay(client, pay_request)
    return_url = f"/pay/{pay_request.token}/card/{nonce}/return/"
    for _ in range(3):
        again = client.post(return_url, fields)
        assert again.status_code == 302 and again["Location"].endswith(f"/done/{nonce}/")
    assert Payment.objects.filter(payment_request=pay_request).count() == 1
    pay_request.refresh_from_db()
    assert pay_request.amount_paid == Decimal("120.00")


@pytest.mark.django_db
def test_replayed_first_step_reuses_its_submission(client, pay_request):
    nonce = form_nonce(client.get(f"/pay/{pay_request.token}/card/").content.decode())
    first = client.post(f"/pay/{pay_request.token}/card/", {"nonce": nonce, "amount": "120.00"})
    second = client.post(f"/pay/{pay_request.token}/card/", {"nonce": nonce, "amount": "120.00"})
    assert first["Location"] == second["Location"]
    assert PaySubmission.objects.filter(payment_request=pay_request).count() == 1


@pytest.mark.django_db
def test_replayed_3ds_return_does_not_record_twice(client, pay_request):
    response, nonce, _ = card_pay(client, pay_request, number="4000000000003220")
    challenge = response["Location"]
    answered = client.post(challenge, {"approve": "1"})
    assert client.get(answered["Location"]).status_code == 302
    assert client.get(answered["Location"]).status_code == 302
    payment = pay_request.payments.get()
    assert payment.status == "succeeded"
    from notifications.models import Event

    assert Event.objects.filter(type="payment.succeeded").count() == 1


@pytest.mark.django_db
def test_replayed_sepa_form_signs_one_mandate_and_one_debit(client, pay_request, django_capture_on_commit_callbacks):
    nonce = form_nonce(client.get(f"/pay/{pay_request.token}/sepa/").content.decode())
    data = {"nonce": nonce, "holder_name": "Marie Lefèvre", "iban": "FR14 2004 1010 0505 0001 3M02 606",
            "consent": "1", "amount": "120.00"}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(f"/pay/{pay_request.token}/sepa/", data)
        second = client.post(f"/pay/{pay_request.token}/sepa/", data)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Mandate.objects.filter(customer=pay_request.customer).count() == 1
    assert Payment.objects.filter(payment_request=pay_request).count() == 1


def test_the_nonce_is_unique_in_the_database(db, pay_request):
    from django.db import IntegrityError

    nonce = pp.nonce_new()
    PaySubmission.objects.create(nonce=nonce, payment_request=pay_request, kind="card", amount="10.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaySubmission.objects.create(nonce=nonce, payment_request=pay_request, kind="card", amount="10.00")


def _run_in_thread(target, results, key):
    def runner():
        try:
            results[key] = target()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[key] = exc
        finally:
            connections.close_all()
    thread = threading.Thread(target=runner)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_card_payments_racing_cannot_collect_more_than_the_balance():
    customer = CustomerFactory()
    request = make_request(customer, amount="100.00")
    submissions = [pp.card_checkout_start(payment_request=request, nonce=pp.nonce_new(), amount="100.00")[0]
                   for _ in range(2)]
    tokens = [tokenize(number=n, exp_month=12, exp_year=2039, cvc="123")
              for n in ("4242424242424242", "5555555555554444")]
    barrier = threading.Barrier(2)
    results: dict[int, object] = {}

    def pay(i):
        def go():
            barrier.wait()
            return pp.card_token_receive(submission=submissions[i], card_token=tokens[i])
        return go

    threads = [_run_in_thread(pay(i), results, i) for i in range(2)]
    for t in threads:
        t.join(30)
    outcomes = sorted(type(r).__name__ for r in results.values())
    assert outcomes == ["AmountExceedsBalance", "PaySubmission"], results
    request.refresh_from_db()
    assert request.amount_paid == Decimal("100.00") and request.status == "paid"
    assert Payment.objects.filter(payment_request=request).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_second_payment_waits_for_the_first_reservation_and_is_refused():
    """Two connections: the first holds the request's row lock with its reservation made;
    the second blocks on the lock, then sees the reservation and cannot over-collect."""
    customer = CustomerFactory()
    request = make_request(customer, amount="100.00")
    reserved, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def first():
        with transaction.atomic():
            payment = services.payment_create(customer=customer, method="card", amount="70.00",
                                              payment_request=request)
            reserved.set()
            release.wait(10)
        return payment

    def second():
        reserved.wait(10)
        return services.payment_create(customer=customer, method="card", amount="70.00", payment_request=request)

    t1 = _run_in_thread(first, results, "first")
    t2 = _run_in_thread(second, results, "second")
    reserved.wait(10)
    time.sleep(0.3)  # let the second connection reach the lock
    assert "second" not in results, "the second payment did not wait for the row lock"
    release.set()
    t1.join(30)
    t2.join(30)
    assert isinstance(results["first"], Payment)
    assert isinstance(results["second"], AmountExceedsBalance)
    assert "30.00" in str(results["second"])
    third = services.payment_create(customer=customer, method="card", amount="30.00", payment_request=request)
    assert third.amount == Decimal("30.00")
