"""Card checkouts left half done: a worker that dies during the gateway call, a payer who never
comes back from 3-D Secure. Nothing stays pending, nothing is charged or recorded twice."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from collections_app.gateways.sandbox import SandboxGateway, tokenize
from collections_app.models import Payment
from collections_app.paypages import services as pp
from collections_app.paypages.models import PaySubmission
from collections_app.services import payment_request_reserved_amount
from notifications.models import Event
from tests.factories import CustomerFactory, make_request

pytestmark = pytest.mark.django_db

LATER = dt.timedelta(minutes=31)


def start(request, number: str) -> tuple[PaySubmission, str]:
    submission, _ = pp.card_checkout_start(payment_request=request, nonce=pp.nonce_new(), amount="80.00")
    return submission, tokenize(number=number, exp_month=12, exp_year=2039, cvc="123")


def test_a_worker_dying_during_the_gateway_call_is_recovered_once(monkeypatch):
    # given: the process dies while the gateway authorises the card
    request = make_request(CustomerFactory(), amount="80.00")
    submission, token = start(request, "4242424242424242")

    def dies(self, **kwargs):
        raise SystemExit("worker killed during the gateway call")

    with monkeypatch.context() as m:
        m.setattr(SandboxGateway, "authorize", dies)
        with pytest.raises(SystemExit):
            pp.card_token_receive(submission=submission, card_token=token)
    submission.refresh_from_db()
    assert submission.status == PaySubmission.Status.PROCESSING
    assert payment_request_reserved_amount(request) == Decimal("80.00")
    # when: not yet stale → left alone; after the timeout → finished, twice in a row
    assert pp.card_checkouts_recover()["succeeded"] == 0
    first = pp.card_checkouts_recover(now=timezone.now() + LATER)
    second = pp.card_checkouts_recover(now=timezone.now() + LATER)
    # then
    assert first["succeeded"] == 1 and second == {"succeeded": 0, "failed": 0, "skipped": 0}
    request.refresh_from_db()
    submission.refresh_from_db()
    assert request.status == "paid" and request.amount_paid == Decimal("80.00")
    assert submission.status == PaySubmission.Status.SUCCEEDED and submission.card_token == ""
    assert Payment.objects.filter(payment_request=request).count() == 1
    assert Event.objects.filter(type="payment.succeeded").count() == 1


def test_a_declined_card_found_on_recovery_frees_the_balance(monkeypatch):
    request = make_request(CustomerFactory(), amount="80.00")
    submission, token = start(request, "4000000000009995")  # insufficient funds
    with monkeypatch.context() as m:
        m.setattr(SandboxGateway, "authorize", lambda self, **kw: (_ for _ in ()).throw(SystemExit()))
        with pytest.raises(SystemExit):
            pp.card_token_receive(submission=submission, card_token=token)
    assert pp.card_checkouts_recover(now=timezone.now() + LATER)["failed"] == 1
    payment = Payment.objects.get(payment_request=request)
    assert payment.status == "failed" and payment.reason_code == "insufficient_funds"
    assert payment_request_reserved_amount(request) == Decimal("0.00")


def test_an_abandoned_3d_secure_page_fails_the_payment_after_the_timeout():
    # given: the payer is sent to 3-D Secure and never comes back
    request = make_request(CustomerFactory(), amount="80.00")
    submission, token = start(request, "4000000000003220")
    submission = pp.card_token_receive(submission=submission, card_token=token)
    assert submission.status == PaySubmission.Status.AWAITING_ACTION
    assert payment_request_reserved_amount(request) == Decimal("80.00")
    # when
    counts = pp.card_checkouts_recover(now=timezone.now() + LATER)
    # then: the reservation is released and the request can be paid again
    assert counts["failed"] == 1
    submission.refresh_from_db()
    assert submission.status == PaySubmission.Status.FAILED and submission.decline_code == "authentication_abandoned"
    assert payment_request_reserved_amount(request) == Decimal("0.00")
    assert pp.available_balance(request) == Decimal("80.00")
    failed = Event.objects.get(type="payment.failed")
    assert failed.payload["reason_code"] == "authentication_abandoned"


def test_3d_secure_passed_at_the_bank_but_the_return_was_lost_counts_as_paid():
    request = make_request(CustomerFactory(), amount="80.00")
    submission, token = start(request, "4000000000003220")
    submission = pp.card_token_receive(submission=submission, card_token=token)
    # the payer approved on the bank's page; their browser never came back to us
    challenge = submission.action_url.rstrip("/").rsplit("/", 1)[-1]
    SandboxGateway().complete_challenge(challenge=challenge, approve=True)
    assert pp.card_checkouts_recover(now=timezone.now() + LATER)["succeeded"] == 1
    request.refresh_from_db()
    assert request.status == "paid"
    assert Payment.objects.filter(payment_request=request, status="succeeded").count() == 1
