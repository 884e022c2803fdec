"""Pay pages through Django's test client: what the debtor sees, field errors, closed
requests, 404s without enumeration, rate limiting, locale."""
from __future__ import annotations

import base64
import datetime as dt
import secrets
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import given, strategies as st
from hypothesis import settings as hypothesis_settings

from collections_app import services
from collections_app.models import Creditor, Customer, PaymentRequest, new_token
from collections_app.paypages import services as pp
from tests.collections_app.paypages.conftest import form_nonce, post_back_fields
from tests.collections_app.paypages.helpers import card_pay
from tests.factories import CustomerFactory, make_request

pytestmark = pytest.mark.django_db


def test_pay_page_shows_creditor_invoices_balance_and_methods(client, pay_request):
    invoice = pay_request.invoices.get()
    html = client.get(f"/pay/{pay_request.token}/").content.decode()
    assert pay_request.creditor.name in html
    assert invoice.external_ref in html
    assert "120,00 EUR" in html  # French customer: French number format
    assert f"/pay/{pay_request.token}/card/" in html
    assert f"/pay/{pay_request.token}/sepa/" in html
    assert f"/pay/{pay_request.token}/transfer/" in html
    assert f"/pay/{pay_request.token}/instalments/" in html
    assert pay_request.short_reference in html


def test_only_allowed_methods_are_offered(client, debtor):
    request = make_request(debtor, amount="50.00", allowed_methods=["transfer"])
    html = client.get(f"/pay/{request.token}/").content.decode()
    assert "/transfer/" in html and "/card/" not in html and "/sepa/" not in html
    assert client.get(f"/pay/{request.token}/card/").status_code == 404


def test_wrong_token_gets_the_same_404_as_any_missing_page(client, pay_request):
    missing_page = client.get("/no-such-page/")
    assert missing_page.status_code == 404
    for url in (f"/pay/{new_token()}/", f"/pay/{pay_request.token[:-1]}x/", "/pay/abc/",
                f"/portal/{new_token()}/", f"/pay/{new_token()}/card/"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.content == missing_page.content


def test_tokens_are_at_least_128_bits_and_unguessable(debtor):
    requests = [make_request(debtor, amount="10.00") for _ in range(20)]
    tokens = [r.token for r in requests] + [debtor.portal_token] + [pp.nonce_new() for _ in range(200)]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128
        assert len(raw) == 32  # 256 bits from the OS CSPRNG (secrets.token_urlsafe)
    # Nothing derived from the request: its references are not in the token.
    for request in requests:
        assert request.short_reference not in request.token and request.reference not in request.token
    # A token is not predictable from the previous one: bits differ about half the time.
    a, b = (int.from_bytes(base64.urlsafe_b64decode(t + "="), "big") for t in tokens[:2])
    assert 64 < bin(a ^ b).count("1") < 192


def test_closed_requests_get_a_clear_page(client, debtor):
    expired = make_request(debtor, amount="20.00")
    PaymentRequest.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    cancelled = services.payment_request_cancel(payment_request=make_request(debtor, amount="20.00"))
    paid = make_request(debtor, amount="20.00")
    payment = services.payment_create(customer=debtor, method="transfer", amount="20.00", payment_request=paid)
    services.payment_record_success(payment=payment)
    for request, word in ((expired, "expired"), (cancelled, "cancelled"), (paid, "fully paid")):
        response = client.get(f"/pay/{request.token}/?lang=en")
        assert response.status_code == 200
        assert word in response.content.decode()
        assert "/card/" not in response.content.decode()
        # and no way to pay it from the method pages either
        assert word in client.get(f"/pay/{request.token}/card/?lang=en").content.decode()


def test_pages_are_rate_limited_with_a_429(client, pay_request, settings):
    settings.PAYPAGE_RATE_LIMIT = (3, 60)
    codes = [client.get(f"/pay/{pay_request.token}/").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    blocked = client.get(f"/pay/{pay_request.token}/")
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    # guessing tokens counts against the same budget
    assert client.get(f"/pay/{new_token()}/").status_code == 429


def test_locale_follows_the_customer_with_a_switch(client, creditor):
    english = CustomerFactory(creditor=creditor, locale="en")
    request = make_request(english, amount="30.00")
    html = client.get(f"/pay/{request.token}/transfer/").content.decode()
    assert '<html lang="en">' in html and "<h1>Bank transfer</h1>" in html
    switched = client.get(f"/pay/{request.token}/transfer/?lang=fr")
    assert '<html lang="fr">' in switched.content.decode()
    assert "<h1>Virement bancaire</h1>" in switched.content.decode()
    # the choice sticks (cookie) for the next pages
    assert '<html lang="fr">' in client.get(f"/pay/{request.token}/").content.decode()


@pytest.mark.parametrize("amount, message", [
    ("500.00", "above the remaining balance"),
    ("2.00", "minimum payment is 10.00 EUR"),
    ("abc", "Enter a valid amount"),
    ("0", "greater than zero"),
])
def test_card_amount_field_errors(client, pay_request, amount, message):
    page = client.get(f"/pay/{pay_request.token}/card/?lang=en")
    response = client.post(f"/pay/{pay_request.token}/card/",
                            {"nonce": form_nonce(page.content.decode()), "amount": amount})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert 'id="amount-error"' in html and 'aria-invalid="true"' in html


def test_partial_payment_refused_when_the_request_must_be_paid_in_full(client, debtor):
    request = make_request(debtor, amount="80.00", allow_partial=False)
    page = client.get(f"/pay/{request.token}/card/?lang=en")
    response = client.post(f"/pay/{request.token}/card/",
                           {"nonce": form_nonce(page.content.decode()), "amount": "40.00"})
    assert response.status_code == 400
    assert "must be paid in full" in response.content.decode()


@pytest.mark.parametrize("iban, message", [
    ("FR7630006000011234567890188", "its check digits do not match"),  # last digit off by one
    ("XX00123", "must start with a country code"),
    ("FR76300060000112345678901", "does not have the right length"),
    ("FR76 3000 6000 01!2 3456 7890 189", "please check it"),
    ("", "Enter your IBAN"),
])
def test_sepa_invalid_iban_is_a_field_error(client, pay_request, iban, message):
    page = client.get(f"/pay/{pay_request.token}/sepa/?lang=en")
    response = client.post(f"/pay/{pay_request.token}/sepa/", {
        "nonce": form_nonce(page.content.decode()), "holder_name": "Marie Lefèvre", "iban": iban,
        "consent": "1", "amount": "120.00"})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and 'id="iban-error"' in html
    assert pay_request.customer.mandates.count() == 0


def test_sepa_needs_explicit_consent(client, pay_request):
    page = client.get(f"/pay/{pay_request.token}/sepa/?lang=en")
    response = client.post(f"/pay/{pay_request.token}/sepa/", {
        "nonce": form_nonce(page.content.decode()), "holder_name": "Marie Lefèvre",
        "iban": "FR1420041010050500013M02606", "amount": "120.00"})
    assert response.status_code == 400
    assert 'id="consent-error"' in response.content.decode()
    assert pay_request.customer.mandates.count() == 0


def test_card_payment_in_full(client, pay_request):
    response, nonce, _fields = card_pay(client, pay_request)
    assert response.status_code == 302 and response["Location"].endswith(f"/done/{nonce}/")
    pay_request.refresh_from_db()
    assert pay_request.status == PaymentRequest.Status.PAID
    assert pay_request.invoices.get().status == "paid"
    payment = pay_request.payments.get()
    assert payment.status == "succeeded" and payment.gateway == "sandbox" and payment.gateway_reference
    html = client.get(response["Location"] + "?lang=en").content.decode()
    assert "your payment succeeded" in html


def test_declined_card_then_success_with_another_card(client, pay_request):
    response, nonce, _ = card_pay(client, pay_request, number="4000000000000002")
    html = client.get(response["Location"] + "?lang=en").content.decode()
    assert "declined" in html and "Try again with another card" in html
    failed = pay_request.payments.get()
    assert failed.status == "failed" and failed.reason_code == "do_not_honor"
    response, _nonce, _ = card_pay(client, pay_request, number="5555555555554444")
    pay_request.refresh_from_db()
    assert pay_request.status == "paid"
    assert sorted(pay_request.payments.values_list("status", flat=True)) == ["failed", "succeeded"]


def test_several_cards_pay_a_request_in_parts(client, pay_request):
    card_pay(client, pay_request, amount="50.00")
    pay_request.refresh_from_db()
    assert pay_request.status == "partially_paid" and pay_request.amount_due == Decimal("70.00")
    assert "70,00 EUR" in client.get(f"/pay/{pay_request.token}/").content.decode()
    card_pay(client, pay_request, number="5555555555554444", amount="70.00")
    pay_request.refresh_from_db()
    assert pay_request.status == "paid" and pay_request.payments.filter(status="succeeded").count() == 2


def test_3d_secure_approved_and_failed(client, debtor):
    ok_request = make_request(debtor, amount="40.00")
    response, nonce, _ = card_pay(client, ok_request, number="4000000000003220", follow_3ds=True)
    assert response["Location"].endswith(f"/done/{nonce}/")
    ok_request.refresh_from_db()
    assert ok_request.status == "paid"
    ko_request = make_request(debtor, amount="40.00")
    card_pay(client, ko_request, number="4000000000003220", follow_3ds=False)
    payment = ko_request.payments.get()
    assert payment.status == "failed" and payment.reason_code == "authentication_failed"


def test_invalid_card_number_comes_back_as_an_error_on_the_card_form(client, pay_request):
    response, nonce, fields = card_pay(client, pay_request, number="1234 5678 9012 3456")
    assert fields == {"error": "incorrect_number"}
    assert response.status_code == 302 and "error=incorrect_number" in response["Location"]
    html = client.get(response["Location"] + "&lang=en").content.decode()
    assert "The card number is not valid." in html
    assert pay_request.payments.count() == 0


def test_saved_card_and_portal_removal(client, pay_request):
    card_pay(client, pay_request, save_card=True)
    customer = Customer.objects.get(pk=pay_request.customer_id)
    card = customer.saved_cards.get()
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "4242", 12, 2039)
    assert card.gateway_token.startswith("tok_")
    other = make_request(customer, amount="15.00")
    html = client.get(f"/portal/{customer.portal_token}/?lang=en").content.decode()
    assert other.reference in html and f"/pay/{other.token}/" in html  # open request with its pay button
    assert pay_request.reference in html  # in the paid history
    assert "•••• 4242" in html
    response = client.post(f"/portal/{customer.portal_token}/?lang=en", {"card": card.pk})
    assert "was removed" in response.content.decode()
    card.refresh_from_db()
    assert card.status == "removed"


def test_a_card_paying_a_plan_cannot_be_removed_from_the_portal(client, debtor):
    request = make_request(debtor, amount="90.00")
    page = client.get(f"/pay/{request.token}/instalments/?count=3&method=card")
    client.post(f"/pay/{request.token}/card/", {"nonce": form_nonce(page.content.decode()), "instalment_count": "3"})
    submission = request.pay_submissions.get()
    gateway = client.post("/sandbox-gateway/checkout/", {
        "number": "4242424242424242", "exp_month": "12", "exp_year": "39", "cvc": "123",
        "return_url": f"/pay/{request.token}/card/{submission.nonce}/return/"})
    token = post_back_fields(gateway.content.decode())["token"]
    client.post(f"/pay/{request.token}/card/{submission.nonce}/return/", {"token": token})
    card = debtor.saved_cards.get()
    response = client.post(f"/portal/{debtor.portal_token}/?lang=en", {"card": card.pk})
    assert "cannot be removed" in response.content.decode()
    card.refresh_from_db()
    assert card.status == "active"


def test_instalments_preview_respects_the_creditor_limits(client, debtor):
    request = make_request(debtor, amount="100.00")
    options = pp.pay_options(request)
    # max 3 instalments of at least 20.00 (creditor defaults)
    assert options.instalment_counts == (2, 3)
    html = client.get(f"/pay/{request.token}/instalments/?count=3&method=card&lang=en").content.decode()
    assert html.count("EUR</td>") == 3 and "33.34 EUR" in html and "33.33 EUR" in html
    bad = client.get(f"/pay/{request.token}/instalments/?count=6&method=card&lang=en")
    assert bad.status_code == 400 and "Choose between 2 and 3 instalments" in bad.content.decode()
    small = make_request(debtor, amount="30.00")
    assert not pp.pay_options(small).instalments
    assert client.get(f"/pay/{small.token}/instalments/").status_code == 404


def test_unknown_nonce_format_is_refused(client, pay_request):
    response = client.post(f"/pay/{pay_request.token}/card/", {"nonce": "short", "amount": "120.00"})
    assert response.status_code == 400
    assert pay_request.pay_submissions.count() == 0


def test_random_nonces_are_not_reused_by_the_form(client, pay_request):
    seen = {form_nonce(client.get(f"/pay/{pay_request.token}/card/").content.decode()) for _ in range(5)}
    assert len(seen) == 5
    assert all(len(n) == len(secrets.token_urlsafe(32)) for n in seen)


def test_landing_page_kept_rendered_only_while_nothing_it_shows_changed(client, pay_request):
    url = f"/pay/{pay_request.token}/?lang=en"
    first = client.get(url).content
    assert client.get(url).content == first  # served again
    # A transfer matched to the invoice directly (not through this request) shows at once.
    payment = services.payment_create(customer=pay_request.customer, method="transfer", amount="20.00")
    services.payment_record_success(payment=payment)
    html = client.get(url).content.decode()
    assert html != first.decode() and "<td class=\"num\">20.00</td>" in html
    # A payment in flight (reserved) shows at once too.
    services.payment_create(customer=pay_request.customer, method="sepa_dd", amount="30.00",
                            payment_request=pay_request)
    assert "A payment is in progress" in client.get(url).content.decode()


def test_sandbox_gateway_only_returns_to_this_site(client):
    for target in ("https://evil.example/steal", "//evil.example/x", "javascript:alert(1)"):
        response = client.post("/sandbox-gateway/checkout/", {
            "number": "4242424242424242", "exp_month": "12", "exp_year": "39", "cvc": "123", "return_url": target})
        assert response.status_code == 400


@pytest.mark.parametrize("typed, expected", [
    ("12,50", Decimal("12.50")), (" 12.5 ", Decimal("12.50")), ("1 00,00", Decimal("100.00")),
    ("100", Decimal("100.00")),
])
def test_amounts_typed_the_french_or_english_way(pay_request, typed, expected):
    assert pp.amount_check(pay_request, typed) == expected


@hypothesis_settings(max_examples=60, deadline=None)
@given(cents=st.integers(min_value=-10**9, max_value=10**9))
def test_amount_check_accepts_exactly_the_allowed_range(cents):
    from collections_app.errors import ValidationFailed

    # An unsaved request of an unsaved creditor with the defaults: partial payments from 10.00.
    request = PaymentRequest(amount=Decimal("120.00"), amount_paid=Decimal("0.00"), currency="EUR",
                             allowed_methods=["card"], creditor=Creditor())
    amount = Decimal(cents).scaleb(-2)
    allowed = amount == Decimal("120.00") or Decimal("10.00") <= amount <= Decimal("120.00")
    try:
        result = pp.amount_check(request, str(amount), balance=Decimal("120.00"))
    except ValidationFailed as exc:
        assert not allowed and exc.field == "amount"
    else:
        assert allowed and result == amount


def test_every_outcome_emits_its_event(client, pay_request):
    from notifications.models import Event

    card_pay(client, pay_request, number="4000000000009995", save_card=True)
    failed = Event.objects.get(type="payment.failed")
    assert failed.payload["reason_code"] == "insufficient_funds" and failed.payload["method"] == "card"
    assert Event.objects.filter(type="card.saved").count() == 1
    card_pay(client, pay_request, number="4242424242424242")
    assert Event.objects.get(type="payment.succeeded").payload["amount"] == "120.00"
    paid = Event.objects.get(type="payment_request.paid")
    assert paid.payload["payment_request_id"] == pay_request.pk and paid.payload["amount_due"] == "0.00"
    assert Event.objects.filter(type="invoice.paid").count() == 1
