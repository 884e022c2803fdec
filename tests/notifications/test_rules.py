"""Rules, conditions, restricted templates and the email / SMS / file channels."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from notifications.conditions import ConditionError, conditions_match, conditions_validate
from notifications.dispatch import dispatch_pending
from notifications.models import Delivery
from notifications.rules import rule_validate
from notifications.sender import deliveries_recover_stuck, deliveries_send_due
from notifications.templating import TemplateRefused, render, template_check
from tests.servers import Receiver
from tests.notifications.factories import emit, rule, template

pytestmark = pytest.mark.django_db(transaction=True)


def test_conditions_matching_and_not_matching():
    big_sepa = rule(conditions=[{"field": "amount", "op": ">=", "value": "1000"},
                                {"field": "method", "op": "=", "value": "sepa_dd"}])
    emit(amount="1500.00", method="sepa_dd")   # matches
    emit(amount="999.99", method="sepa_dd")    # amount too small
    emit(amount="2000.00", method="card")      # wrong method
    dispatch_pending()
    # read in Python: SQLite's JSON extraction turns "1500.00" into a float
    assert [d.event.payload["amount"] for d in Delivery.objects.select_related("event")] == ["1500.00"]
    assert Delivery.objects.get().rule == big_sepa


def test_any_match_and_customer_tags():
    rule(match="any", conditions=[{"field": "customer_tags", "op": "=", "value": "key account"},
                                  {"field": "amount", "op": ">", "value": "5000"}])
    emit(customer_tags=["key account"], amount="10")
    emit(customer_tags=["small"], amount="6000")
    emit(customer_tags=[], amount="10")
    dispatch_pending()
    assert Delivery.objects.count() == 2


def test_rules_are_scoped_by_event_type_creditor_and_activity():
    rule(creditor_id=2)
    rule(is_active=False)
    rule(event_type="refund.initiated")
    emit(creditor_id=1)
    dispatch_pending()
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("op,value,expected", [
    ("=", "1500", True), ("!=", "1500", False), ("<", "2000", True), ("<=", "1500.00", True), (">", "1500", False),
    ("≥", "1500", True), ("in", "card, sepa_dd", None), ("contains", "50", True),
])
def test_each_operator(op, value, expected):
    payload = {"amount": "1500.00", "method": "sepa_dd"}
    field = "method" if op == "in" else "amount"
    result = conditions_match(payload, [{"field": field, "op": op, "value": value}])
    assert result is (True if expected is None else expected)


def test_missing_fields_and_bad_conditions():
    assert not conditions_match({}, [{"field": "amount", "op": ">", "value": "1"}])
    assert conditions_match({}, [{"field": "amount", "op": "!=", "value": "1"}])
    assert conditions_match({"allocations": [{"invoice_id": 5}]}, [{"field": "allocations.0.invoice_id",
                                                                      "op": "=", "value": 5}])
    with pytest.raises(ConditionError):
        conditions_validate([{"field": "amount", "op": "~", "value": 1}])
    with pytest.raises(ConditionError):
        conditions_validate({"field": "amount"})


@given(a=st.decimals(min_value=-10**6, max_value=10**6, places=2),
       b=st.decimals(min_value=-10**6, max_value=10**6, places=2))
def test_numeric_comparisons_agree_with_decimal(a: Decimal, b: Decimal):
    payload = {"amount": str(a)}
    for op, expected in ((">=", a >= b), ("<", a < b), ("=", a == b), ("!=", a != b)):
        assert conditions_match(payload, [{"field": "amount", "op": op, "value": str(b)}]) is expected


def test_rule_validation_gives_field_errors():
    with pytest.raises(ValidationError) as exc:
        rule_validate(event_type="no.such", channel="sms", template=template("email"), recipient="staff_group",
                      conditions=[{"field": "x", "op": "??"}])
    assert set(exc.value.message_dict) == {"event_type", "template", "recipient", "conditions"}
    with pytest.raises(ValidationError) as exc:
        rule_validate(event_type="payment.failed", channel="email", template=None, recipient="addresses",
                      conditions=[], addresses="compta@example.fr, not-an-email")
    assert "addresses" in exc.value.message_dict


# --- templates -----------------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "{{ settings.SECRET_KEY }}", "{% if settings.DEBUG %}x{% endif %}", "{{ payload.amount|default:settings.SECRET_KEY }}",
    "{{ request.user }}", "{{ user.password }}", "{% load static %}", "{% include 'admin/base.html' %}",
    "{% debug %}", "{% url 'admin:index' %}", "{{ payload.customer_name|safe }}", "{{ customer_name }}",
    "{% for x in payload.invoice_ids %}{{ x }}{% endfor %}{{ x.__class__ }}", "{% for %}",
])
def test_templates_reading_outside_their_context_are_refused(source):
    with pytest.raises(TemplateRefused):
        template_check(source)


def test_a_template_that_reads_settings_cannot_be_saved(settings):
    from notifications.admin import NotificationTemplateForm

    form = NotificationTemplateForm(data={"key": "leak", "channel": "email", "locale": "fr",
                                          "subject": "{{ settings.SECRET_KEY }}", "body_text": "x"})
    assert not form.is_valid() and "settings" in str(form.errors["subject"])


def test_allowed_templates_render_with_helpers_and_escape_html():
    context = {"payload": {"customer_name": "<b>Zoé</b>", "amount": "1234.5", "currency": "EUR",
                           "due_date": "2026-12-15", "invoice_external_refs": ["A1", "A2"]},
               "event": {"type": "invoice.created"}, "recipient": {}}
    source = ("{{ payload.customer_name }} {{ payload.amount|money:payload.currency }} "
              "{{ payload.due_date|as_date|date:'j F Y' }} {% for r in payload.invoice_external_refs %}{{ r }}"
              "{% if not forloop.last %},{% endif %}{% endfor %}")
    french = render(source, context, html=True, locale="fr")
    assert french.startswith("&lt;b&gt;Zoé&lt;/b&gt; 1") and "234,50\u00a0€ 15 décembre 2026 A1,A2" in french
    assert render(source, context, html=False, locale="en") == "<b>Zoé</b> €1,234.50 15 December 2026 A1,A2"


# --- channels ------------------------------------------------------------------------------

def test_customer_email_through_a_real_smtp_sink_in_the_customer_language(smtp_sink):
    tmpl = template("email", key="paid")
    template("email", key="paid", locale="en", subject="Payment of {{ payload.amount|money:payload.currency }}",
             body_text="Hello {{ payload.customer_name }}", body_html="<p>Hello {{ payload.customer_name }}</p>")
    rule(tmpl=tmpl)
    emit(customer_email="anne@example.com", customer_locale="en", customer_name="Anne & Co")
    emit(customer_email="marie@example.fr", customer_locale="fr", payment_id=2)
    dispatch_pending()
    assert deliveries_send_due()["sent"] == 2
    by_rcpt = {rcpts[0]: msg for rcpts, msg in smtp_sink.messages}
    english = by_rcpt["anne@example.com"]
    assert english["Subject"] == "Payment of €1,500.00"
    assert english.get_body(("plain",)).get_content().strip() == "Hello Anne & Co"
    assert "Hello Anne &amp; Co" in english.get_body(("html",)).get_content()
    assert english["Message-ID"].startswith("<delivery-")
    assert by_rcpt["marie@example.fr"]["Subject"].startswith("Paiement de 1")


def test_staff_group_and_fixed_addresses(smtp_sink):
    sales = Group.objects.create(name="sales")
    for name, email, active in (("a", "a@corp.fr", True), ("b", "", True), ("c", "c@corp.fr", False)):
        User.objects.create(username=name, email=email, is_active=active).groups.add(sales)
    rule(recipient="staff_group", staff_group=sales)
    rule(recipient="addresses", addresses="compta@corp.fr; dg@corp.fr", tmpl=template("email", key="two"))
    emit()
    dispatch_pending()
    deliveries_send_due()
    assert sorted(r[0] for r, _m in smtp_sink.messages) == ["a@corp.fr", "compta@corp.fr", "dg@corp.fr"]


def test_customer_without_email_is_skipped_with_the_reason():
    rule()
    emit(customer_email="")
    dispatch_pending()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.SKIPPED and "customer_email" in delivery.last_error


def test_dispatching_twice_writes_one_delivery_per_rule_event_and_recipient(smtp_sink):
    rule()
    event = emit()
    dispatch_pending()
    from notifications.rules import rules_handle_event

    rules_handle_event(event)  # as if a second dispatcher had handled it too
    deliveries_send_due()
    assert Delivery.objects.count() == 1 and len(smtp_sink.messages) == 1


def test_sms_through_the_http_provider(settings):
    sms_provider = Receiver().start()
    try:
        settings.SMS_BACKEND, settings.SMS_HTTP_URL = "http", sms_provider.url
        settings.SMS_HTTP_USERNAME, settings.SMS_HTTP_PASSWORD = "acct", "pw"
        rule(channel="sms")
        emit()
        dispatch_pending()
        assert deliveries_send_due()["sent"] == 1
        sent = sms_provider.requests[0]
        assert sent.json() == {"to": "+33612345678", "from": settings.SMS_SENDER,
                               "text": "Paiement 1500.00 EUR recu."}
        assert sent.headers["authorization"].startswith("Basic ")
        assert Delivery.objects.get().provider_message_id == "r1"
        # a provider refusal (4xx) is final, a 5xx is retried
        sms_provider.script = [400]
        emit(payment_id=2)
        dispatch_pending()
        deliveries_send_due()
        assert Delivery.objects.get(event__payload__payment_id=2).status == Delivery.Status.DEAD
    finally:
        sms_provider.stop()


def test_a_retried_sms_carries_the_same_idempotency_key_to_the_http_provider(settings):
    """A provider that accepted a message but whose answer was lost (here a 503) sees the retry
    with the same key, so it can send the message once."""
    sms_provider = Receiver().start()
    try:
        settings.SMS_BACKEND, settings.SMS_HTTP_URL = "http", sms_provider.url
        rule(channel="sms")
        emit()
        dispatch_pending()
        sms_provider.script = [503]
        assert deliveries_send_due()["failed"] == 1
        assert deliveries_send_due(now=timezone.now() + dt.timedelta(hours=1))["sent"] == 1
        delivery = Delivery.objects.get()
        keys = [r.headers.get("idempotency-key") for r in sms_provider.requests]
        assert keys == [str(delivery.uuid)] * 2
    finally:
        sms_provider.stop()


def test_sms_numbers_written_the_french_way_go_out_in_e164_and_bad_ones_fail_for_good(settings):
    sms_provider = Receiver().start()
    try:
        settings.SMS_BACKEND, settings.SMS_HTTP_URL = "http", sms_provider.url
        rule(channel="sms")
        # given a customer phone as an ERP file gives it
        emit(customer_phone="06 12 34 56 78")
        dispatch_pending()
        assert deliveries_send_due()["sent"] == 1
        assert sms_provider.requests[0].json()["to"] == "+33612345678"
        # a number that is no phone number is not sent anywhere, and not retried
        emit(payment_id=2, customer_phone="12 34")
        dispatch_pending()
        deliveries_send_due()
        failed = Delivery.objects.get(event__payload__payment_id=2)
        assert failed.status == Delivery.Status.DEAD and len(sms_provider.requests) == 1
    finally:
        sms_provider.stop()


def test_json_file_written_atomically_to_the_erp_outbox(settings, tmp_path):
    settings.OUTBOX_DIR = tmp_path
    rule(channel="file", recipient="file", outbox_name="sage-x3", event_type="payment_request.paid")
    event = emit("payment_request.paid")
    dispatch_pending()
    deliveries_send_due()
    files = list((tmp_path / "sage-x3").iterdir())
    assert len(files) == 1 and files[0].name.endswith(f"-payment_request.paid-{Delivery.objects.get().pk}.json")
    content = json.loads(files[0].read_text())
    assert content["id"] == event.pk and content["payload"]["amount"] == "1500.00"


def test_an_interrupted_file_write_is_written_again_into_the_same_file(settings, tmp_path):
    from notifications.sender import deliveries_claim

    settings.OUTBOX_DIR = tmp_path
    rule(channel="file", recipient="file", outbox_name="erp")
    emit()
    dispatch_pending()
    deliveries_claim()  # a sender claims it and dies before writing anything
    import datetime as dt

    from django.utils import timezone

    later = timezone.now() + dt.timedelta(minutes=11)
    assert deliveries_recover_stuck(now=later) == {"resent": 1, "dead": 0}
    deliveries_send_due(now=later)
    deliveries_send_due(now=later)
    assert len(list(Path(tmp_path, "erp").iterdir())) == 1
    assert Delivery.objects.get().status == Delivery.Status.SENT


def test_a_broken_template_dead_letters_without_blocking_the_outbox():
    from notifications.models import Event, NotificationTemplate

    tmpl = template("email")
    NotificationTemplate.objects.filter(pk=tmpl.pk).update(body_text="{{ settings.SECRET_KEY }}")  # bypassing forms
    rule(tmpl=NotificationTemplate.objects.get(pk=tmpl.pk))
    emit()
    dispatch_pending()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.DEAD and "settings" in delivery.last_error
    assert not Event.objects.filter(dispatched_at__isnull=True).exclude(type="delivery.dead_lettered").exists()
