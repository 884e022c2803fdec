"""SEPA mandate and debit dates, bank transfer with EPC QR code, QR codes of pay links,
and the operators' back-office actions."""
from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
import zxingcpp
from django.core import mail
from PIL import Image

from collections_app import business_days
from collections_app.paypages import qr
from collections_app.paypages import services as pp
from notifications.models import Event
from notifications.sender import deliveries_send_due
from tests.collections_app.paypages.conftest import form_nonce
from tests.factories import make_request

pytestmark = pytest.mark.django_db
IBAN = "FR1420041010050500013M02606"


def decode_png(data: bytes) -> str:
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))
    assert len(results) == 1, "no (or several) QR codes found"
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
    return results[0].text


@pytest.mark.parametrize("today, days, expected", [
    (dt.date(2026, 12, 18), 14, dt.date(2027, 1, 4)),  # Fri + 14 = 1 Jan (TARGET2 closed) -> Mon 4 Jan
    (dt.date(2026, 12, 18), 0, dt.date(2026, 12, 22)),  # D-1 rule alone: two business days, Fri -> Tue
    (dt.date(2026, 12, 23), 0, dt.date(2026, 12, 28)),  # Thu 24 open, 25 and 26 closed: Mon 28
    (dt.date(2026, 4, 2), 1, dt.date(2026, 4, 8)),  # Thu before Easter: Good Friday, Easter Monday closed
])
def test_first_debit_date_follows_sepa_core_on_target2_business_days(settings, today, days, expected):
    settings.SEPA_PRENOTIFICATION_DAYS = days
    first = pp.sepa_first_debit_date(today=today)
    assert business_days.is_target2_business_day(first)
    assert first == expected


def test_sepa_mandate_signed_with_evidence_debit_reserved_and_prenotified(client, pay_request,
                                                                         django_capture_on_commit_callbacks):
    nonce = form_nonce(client.get(f"/pay/{pay_request.token}/sepa/").content.decode())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/pay/{pay_request.token}/sepa/", {
            "nonce": nonce, "holder_name": "Marie Lefèvre", "iban": "fr14 2004 1010 0505 0001 3m02 606",
            "consent": "1", "amount": "120.00"}, HTTP_USER_AGENT="Mozilla/5.0 test", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 302
    mandate = pay_request.customer.mandates.get()
    assert mandate.iban == IBAN and mandate.bic  # BIC derived from the IBAN
    assert mandate.signature_ip == "203.0.113.7" and mandate.signature_user_agent == "Mozilla/5.0 test"
    assert mandate.reference and mandate.signed_at
    payment = pay_request.payments.get()
    assert (payment.method, payment.status, payment.mandate_id) == ("sepa_dd", "pending", mandate.pk)
    assert pp.available_balance(pay_request) == Decimal("0.00")  # reserved: nobody pays it twice meanwhile
    submission = pay_request.pay_submissions.get()
    assert submission.collection_date == pp.sepa_first_debit_date(today=pp.customer_today(pay_request.customer))
    html = client.get(response["Location"] + "?lang=en").content.decode()
    assert mandate.reference in html and pay_request.creditor.sepa_creditor_identifier in html
    assert submission.collection_date.strftime("%m/%d/%Y") in html
    # the notice is in the outbox with the mandate, and leaves with the delivery sender
    assert not mail.outbox
    assert deliveries_send_due()["sent"] == 1
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == [pay_request.customer.email]
    assert mandate.reference in email.subject
    assert pay_request.creditor.sepa_creditor_identifier in email.body
    assert submission.collection_date.strftime("%d/%m/%Y") in email.body  # French customer
    assert "120,00 EUR" in email.body
    assert Event.objects.filter(type="mandate.created").count() == 1


def test_sepa_instalments_plan_scheduled_on_business_days(client, debtor, django_capture_on_commit_callbacks):
    request = make_request(debtor, amount="100.00")
    page = client.get(f"/pay/{request.token}/sepa/?instalment_count=3&lang=en")
    assert 'data-testid="schedule"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/pay/{request.token}/sepa/", {
            "nonce": form_nonce(page.content.decode()), "holder_name": "Marie Lefèvre", "iban": IBAN,
            "consent": "1", "instalment_count": "3"})
    assert response.status_code == 302
    plan = request.instalment_plans.get()
    assert (plan.method, plan.status, plan.origin) == ("sepa_dd", "active", "debtor")
    assert plan.mandate == debtor.mandates.get()
    installments = list(plan.installments.order_by("sequence"))
    assert [i.amount for i in installments] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert installments[0].due_date == pp.sepa_first_debit_date(today=pp.customer_today(debtor))
    assert all(business_days.is_target2_business_day(i.due_date) for i in installments)
    assert request.payments.count() == 0  # scheduled, collected by the SEPA run
    assert Event.objects.filter(type="instalment_plan.created").count() == 1
    deliveries_send_due()
    body = mail.outbox[0].body
    assert all(i.due_date.strftime("%d/%m/%Y") in body for i in installments)


def test_card_instalments_collect_the_first_at_once(client, debtor):
    from tests.collections_app.paypages.conftest import post_back_fields

    request = make_request(debtor, amount="90.00")
    page = client.get(f"/pay/{request.token}/instalments/?count=3&method=card")
    step = client.post(f"/pay/{request.token}/card/", {"nonce": form_nonce(page.content.decode()),
                                                        "instalment_count": "3"})
    entry = client.get(step["Location"])
    assert entry.content.decode().count("30,00 EUR</td>") == 3  # the schedule, before the card is given
    submission = request.pay_submissions.get()
    back = post_back_fields(client.post("/sandbox-gateway/checkout/", {
        "number": "4242424242424242", "exp_month": "12", "exp_year": "39", "cvc": "123",
        "return_url": f"/pay/{request.token}/card/{submission.nonce}/return/"}).content.decode())
    client.post(f"/pay/{request.token}/card/{submission.nonce}/return/", back)
    plan = request.instalment_plans.get()
    assert plan.method == "card" and plan.saved_card.last4 == "4242"
    assert [i.status for i in plan.installments.order_by("sequence")] == ["paid", "scheduled", "scheduled"]
    request.refresh_from_db()
    assert request.amount_paid == Decimal("30.00") and request.status == "partially_paid"


def test_declined_first_card_instalment_cancels_the_plan(client, debtor):
    from tests.collections_app.paypages.conftest import post_back_fields

    request = make_request(debtor, amount="90.00")
    page = client.get(f"/pay/{request.token}/instalments/?count=2&method=card")
    client.post(f"/pay/{request.token}/card/", {"nonce": form_nonce(page.content.decode()), "instalment_count": "2"})
    submission = request.pay_submissions.get()
    back = post_back_fields(client.post("/sandbox-gateway/checkout/", {
        "number": "4000000000009995", "exp_month": "12", "exp_year": "39", "cvc": "123",
        "return_url": f"/pay/{request.token}/card/{submission.nonce}/return/"}).content.decode())
    client.post(f"/pay/{request.token}/card/{submission.nonce}/return/", back)
    assert request.instalment_plans.get().status == "cancelled"
    assert request.payments.get().reason_code == "insufficient_funds"
    # the debtor can start again
    assert pp.pay_options(request).instalments


def test_transfer_page_and_epc_qr_code_decodes_to_the_transfer(client, pay_request):
    html = client.get(f"/pay/{pay_request.token}/transfer/?lang=en").content.decode()
    creditor = pay_request.creditor
    assert "FR76 3000 6000 0112 3456 7890 189" in html and pay_request.short_reference in html and "120.00 EUR" in html
    png = client.get(f"/pay/{pay_request.token}/transfer/epc.png")
    assert png["Content-Type"] == "image/png"
    lines = decode_png(png.content).split("\n")
    # EPC069-12: BCD, version, charset, SCT, BIC, name, IBAN, EUR amount, purpose, structured ref, text
    assert lines[0] == "BCD" and lines[3] == "SCT"
    assert lines[4] == creditor.bic and lines[5] == creditor.legal_name and lines[6] == creditor.iban
    assert Decimal(lines[7].removeprefix("EUR")) == Decimal("120.00")
    assert lines[10] == pay_request.short_reference
    svg = client.get(f"/pay/{pay_request.token}/transfer/epc.svg")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content


def test_epc_qr_follows_partial_payments(client, pay_request):
    from collections_app import services

    payment = services.payment_create(customer=pay_request.customer, method="card", amount="20.00",
                                      payment_request=pay_request)
    services.payment_record_success(payment=payment)
    pay_request.refresh_from_db()
    lines = decode_png(qr.render(qr.epc_qr(pay_request), "png")[0]).split("\n")
    assert Decimal(lines[7].removeprefix("EUR")) == Decimal("100.00")


def test_pay_link_qr_from_the_api_and_the_admin(api, admin_client, pay_request):
    png = api.get(f"/api/v1/payment-requests/{pay_request.pk}/qr/")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert decode_png(png.content) == pay_request.pay_url
    svg = api.get(f"/api/v1/payment-requests/{pay_request.pk}/qr/?fmt=svg")
    assert svg["Content-Type"] == "image/svg+xml" and svg.content.startswith(b"<?xml")
    assert api.get(f"/api/v1/payment-requests/{pay_request.pk}/qr/?fmt=gif").status_code == 400
    page = admin_client.get(f"/admin/collections_app/paymentrequest/{pay_request.pk}/change/")
    assert f"/admin/collections_app/paymentrequest/{pay_request.pk}/qr.png" in page.content.decode()
    admin_png = admin_client.get(f"/admin/collections_app/paymentrequest/{pay_request.pk}/qr.png")
    assert decode_png(admin_png.content) == pay_request.pay_url
    assert admin_client.get(f"/admin/collections_app/paymentrequest/{pay_request.pk}/qr.svg")["Content-Type"] \
        == "image/svg+xml"


def test_operator_sends_the_pay_link_now_by_email(admin_client, pay_request, smtp_sink):
    response = admin_client.post("/admin/collections_app/paymentrequest/", {
        "action": "send_link_by_email", "_selected_action": [pay_request.pk]}, follow=True)
    assert response.status_code == 200
    assert len(smtp_sink.messages) == 1
    recipients, message = smtp_sink.messages[0]
    assert recipients == [pay_request.customer.email]
    assert pay_request.pay_url in message.get_body(("plain",)).get_content()
    event = Event.objects.get(type="payment_request.link_sent")
    assert event.payload["channel"] == "email" and event.payload["sent_by"] == "admin"


def test_operator_sends_the_pay_link_now_by_sms(admin_client, pay_request, receiver, settings):
    settings.SMS_BACKEND, settings.SMS_HTTP_URL = "http", receiver.url
    admin_client.post("/admin/collections_app/paymentrequest/", {
        "action": "send_link_by_sms", "_selected_action": [pay_request.pk]})
    assert len(receiver.requests) == 1
    sms = receiver.requests[0].json()
    assert sms["to"] == pay_request.customer.phone and pay_request.pay_url in sms["text"]
    assert pay_request.short_reference in sms["text"]
    assert Event.objects.get(type="payment_request.link_sent").payload["channel"] == "sms"


def test_pay_link_is_not_sent_for_a_closed_request(admin_client, pay_request):
    from collections_app import services

    services.payment_request_cancel(payment_request=pay_request)
    response = admin_client.post("/admin/collections_app/paymentrequest/", {
        "action": "send_link_by_email", "_selected_action": [pay_request.pk]}, follow=True,
        HTTP_ACCEPT_LANGUAGE="en")
    assert "can no longer be paid" in response.content.decode()
    assert not Event.objects.filter(type="payment_request.link_sent").exists()


def test_one_off_sepa_debits_are_listed_for_the_collection_run(pay_request):
    from collections_app.paypages.selectors import sepa_single_debits_due

    submission, _ = pp.sepa_mandate_sign(payment_request=pay_request, nonce=pp.nonce_new(), holder_name="M. L.",
                                         iban=IBAN, consent=True, today=dt.date(2026, 12, 18))
    day = submission.collection_date
    assert list(sepa_single_debits_due(on_or_before=day - dt.timedelta(days=1))) == []
    due = list(sepa_single_debits_due(on_or_before=day))
    assert [(p.pk, p.collection_date, p.mandate_id) for p in due] == [
        (submission.payment_id, day, submission.mandate_id)]


def test_operator_negotiates_a_plan_and_cancels_a_request_in_the_back_office(admin_client, debtor):
    request = make_request(debtor, amount="100.00")
    today = dt.date.today()
    dates = [today + dt.timedelta(days=d) for d in (10, 40, 70)]
    data = {"creditor": debtor.creditor_id, "customer": debtor.pk, "payment_request": request.pk,
            "method": "transfer", "currency": "EUR", "origin": "operator",
            "installments-TOTAL_FORMS": "3", "installments-INITIAL_FORMS": "0",
            "installments-MIN_NUM_FORMS": "0", "installments-MAX_NUM_FORMS": "1000"}
    for i, (day, amount) in enumerate(zip(dates, ("50.00", "30.00", "20.00"), strict=True)):
        data.update({f"installments-{i}-sequence": str(i + 1), f"installments-{i}-due_date": day.isoformat(),
                     f"installments-{i}-amount": amount, f"installments-{i}-currency": "EUR"})
    assert "/instalments/" in client_get_pay_page(admin_client, request)  # offered, and now cached
    response = admin_client.post("/admin/collections_app/installmentplan/add/", data)
    errors = re.findall(r"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S)
    assert response.status_code == 302, errors
    plan = request.instalment_plans.get()
    assert [(i.due_date, i.amount) for i in plan.installments.order_by("sequence")] == [
        (dates[0], Decimal("50.00")), (dates[1], Decimal("30.00")), (dates[2], Decimal("20.00"))]
    # with a plan running, the debtor is not offered another one
    request.refresh_from_db()
    assert not pp.pay_options(request).instalments
    assert "/instalments/" not in client_get_pay_page(admin_client, request)
    other = make_request(debtor, amount="15.00")
    admin_client.post("/admin/collections_app/paymentrequest/", {
        "action": "cancel_requests", "_selected_action": [other.pk]})
    other.refresh_from_db()
    assert other.status == "cancelled"


def client_get_pay_page(client, request) -> str:
    return client.get(f"/pay/{request.token}/").content.decode()
