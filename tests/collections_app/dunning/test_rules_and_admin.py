"""Assignment, pause providers, failures, the command, statistics and the back-office."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from collections_app import services as core
from collections_app.dunning.models import DunningOverride, DunningRule, DunningStepTemplate, Reminder
from collections_app.dunning.pauses import register_pause_provider, unregister_pause_provider
from collections_app.dunning.selectors import dunning_plan, scenario_statistics
from collections_app.dunning.services import dunning_run
from collections_app.models import PaymentMethod
from notifications.models import Event
from tests.collections_app.dunning.conftest import DUE, at, day, invoice_for, make_scenario, pay
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def plan(offset: int) -> dict[int, tuple[str, int | None, str]]:
    return {i.invoice_id: (i.action, i.scenario_id, i.reason)
            for batch in dunning_plan(today=day(offset), now=at(day(offset))) for i in batch}


def test_assignment_rules_overrides_and_exclusions(creditor):
    default = make_scenario(creditor, name="Default")
    key = make_scenario(creditor, name="Key accounts", is_default=False)
    big = make_scenario(creditor, name="Big amounts", is_default=False)
    forced = make_scenario(creditor, name="Forced", is_default=False)
    DunningRule.objects.create(creditor=creditor, scenario=key, priority=1, tag="key account")
    DunningRule.objects.create(creditor=creditor, scenario=big, priority=2, min_amount=Decimal("1000"))
    plain = invoice_for(CustomerFactory(creditor=creditor), amount="50")
    tagged = invoice_for(CustomerFactory(creditor=creditor, tags=["key account"]), amount="5000")
    large = invoice_for(CustomerFactory(creditor=creditor), amount="1500")
    by_customer = CustomerFactory(creditor=creditor)
    customer_forced = invoice_for(by_customer)
    invoice_forced = invoice_for(by_customer)
    excluded = invoice_for(CustomerFactory(creditor=creditor))
    DunningOverride.objects.create(customer=by_customer, scenario=forced)
    DunningOverride.objects.create(invoice=invoice_forced, scenario=big)
    DunningOverride.objects.create(invoice=excluded, excluded=True)
    result = plan(3)
    assert result[plain.pk][1] == default.pk
    assert result[tagged.pk][1] == key.pk  # the tag rule has priority over the amount rule
    assert result[large.pk][1] == big.pk
    assert result[customer_forced.pk][1] == forced.pk
    assert result[invoice_forced.pk][1] == big.pk  # the invoice's override beats the customer's
    assert excluded.pk not in result


def test_an_override_must_name_one_target_and_a_scenario_or_exclusion(creditor):
    from django.db import IntegrityError, transaction

    scenario = make_scenario(creditor)
    customer = CustomerFactory(creditor=creditor)
    with pytest.raises(IntegrityError), transaction.atomic():
        DunningOverride.objects.create(customer=customer, invoice=invoice_for(customer), scenario=scenario)
    with pytest.raises(IntegrityError), transaction.atomic():
        DunningOverride.objects.create(customer=customer)


def test_built_in_pause_providers_and_a_registered_one(creditor):
    make_scenario(creditor)
    plan_customer = CustomerFactory(creditor=creditor)
    on_plan = invoice_for(plan_customer, amount="300")
    request = core.payment_request_create(creditor=creditor, customer=plan_customer, invoices=[on_plan])
    core.installment_plan_create(customer=plan_customer, method=PaymentMethod.CARD,
                                 schedule=core.instalment_schedule_build(total=Decimal("300"), count=3,
                                                                         first_due_date=DUE),
                                 payment_request=request)
    rich = CustomerFactory(creditor=creditor)
    covered = invoice_for(rich, amount="80")
    core.customer_credit_adjust(customer=rich, delta=Decimal("100"), reason="over-payment")
    poor = CustomerFactory(creditor=creditor)
    not_covered = invoice_for(poor, amount="80")
    core.customer_credit_adjust(customer=poor, delta=Decimal("20"), reason="over-payment")
    transfer = invoice_for(CustomerFactory(creditor=creditor))
    # a higher layer (reconciliation) registers its own provider
    register_pause_provider("test_higher_layer",
                            lambda ids, today: {i: "transfer_awaiting_match" for i in ids if i == transfer.pk})
    try:
        result = plan(3)
    finally:
        unregister_pause_provider("test_higher_layer")
    assert result[on_plan.pk] == ("paused", result[on_plan.pk][1], "instalment_plan")
    assert result[covered.pk][2] == "credit_balance"
    assert result[not_covered.pk][0] == "send"
    assert result[transfer.pk][2] == "transfer_awaiting_match"
    assert plan(3)[transfer.pk][0] == "send"


def test_a_provider_refusal_is_retried_then_failed_and_a_hard_refusal_fails_at_once(creditor, smtp_sink,
                                                                                   sms_receiver):
    make_scenario(creditor, specs=((3, "sms"), (4, "sms")))
    invoice = invoice_for(CustomerFactory(creditor=creditor))
    sms_receiver.status = 503
    for minutes in (0, 10, 31, 62, 100):  # retried 30 minutes after each transient failure, 3 attempts
        dunning_run(today=day(3), now=at(day(3)) + dt.timedelta(minutes=minutes))
    reminder = Reminder.objects.get(invoice=invoice)
    assert (reminder.status, reminder.attempts) == ("failed", 3) and "503" in reminder.error
    assert len(sms_receiver.requests) == 3
    assert Event.objects.get(type="reminder.failed").payload["attempts"] == 3
    sms_receiver.status = 400
    dunning_run(today=day(4), now=at(day(4)))
    assert Reminder.objects.get(invoice=invoice, step__offset_days=4).status == "failed"
    assert len(sms_receiver.requests) == 4


def test_run_dunning_dry_run_lists_and_writes_nothing(creditor, smtp_sink):
    make_scenario(creditor)
    invoice = invoice_for(CustomerFactory(creditor=creditor, name="Alice Martin"))
    out = StringIO()
    call_command("run_dunning", "--date", str(day(11)), "--at", at(day(11)).isoformat(), "--dry-run", "--json",
                 stdout=out)
    lines = out.getvalue().strip().splitlines()
    data = json.loads(lines[-1])
    assert data["ok"] and data["dry_run"] and data["counts"] == {"planned_send": 1}
    [item] = data["items"]
    assert (item["invoice"], item["step_offset_days"], item["channel"]) == (invoice.external_ref, 10, "both")
    assert len(item["skipped_steps"]) == 2
    assert any("would send step J+10 (both)" in line and "Alice Martin" in line for line in lines)
    assert not Reminder.objects.exists() and smtp_sink.messages == []
    assert not Event.objects.filter(type__startswith="reminder.").exists()
    # and for real
    out = StringIO()
    call_command("run_dunning", "--date", str(day(11)), "--at", at(day(11)).isoformat(), "--json", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["counts"] == {
        "planned_send": 1, "sent": 1, "skipped_superseded": 2}
    assert len(smtp_sink.messages) == 1


def test_run_dunning_refuses_a_bad_date():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("run_dunning", "--date", "tomorrow", stdout=StringIO())


def test_statistics_per_step_count_sent_and_paid_within_n_days(creditor, smtp_sink):
    scenario = make_scenario(creditor, specs=((-3, "email"), (3, "email")))
    invoices = [invoice_for(CustomerFactory(creditor=creditor)) for _ in range(3)]
    dunning_run(today=day(-3), now=at(day(-3)))
    pay(invoices[0], "100.00")
    dunning_run(today=day(3), now=at(day(3)))
    stats = {row["offset_days"]: row for row in scenario_statistics(scenario=scenario)}
    assert (stats[-3]["sent"], stats[-3]["paid_after"], stats[-3]["paid_rate"]) == (3, 1, 0.333)
    assert (stats[3]["sent"], stats[3]["paid_after"]) == (2, 0)


def test_templates_are_checked_on_save(creditor):
    scenario = make_scenario(creditor)
    template = DunningStepTemplate(step=scenario.steps.first(), locale="de", subject="{{ settings.SECRET_KEY }}")
    with pytest.raises(ValidationError) as exc:
        template.full_clean()
    assert "subject" in exc.value.message_dict


def test_admin_pages_scenario_preview_statistics_and_invoice_reminders(admin_client, creditor, smtp_sink):
    from django.utils import timezone

    admin_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"

    today = timezone.localdate()
    scenario = make_scenario(creditor, specs=((-3, "email"), (3, "email")))
    customer = CustomerFactory(creditor=creditor, name="Bob Preview")
    invoice = core.invoice_create(creditor=creditor, customer=customer, external_ref="PREVIEW-1",
                                  amount_total=Decimal("42.00"), issue_date=today - dt.timedelta(days=10),
                                  due_date=today + dt.timedelta(days=5))
    page = admin_client.get(f"/admin/collections_app/dunningscenario/{scenario.pk}/change/").content.decode()
    assert "PREVIEW-1" in page and "Bob Preview" in page and "J-3" in page
    dunning_run(today=today + dt.timedelta(days=2), now=at(today + dt.timedelta(days=2)))
    page = admin_client.get(f"/admin/collections_app/invoice/{invoice.pk}/change/").content.decode()
    assert "reminder.sent" in page and "Reminders" in page
    for url in ("dunningscenario", "dunningstep", "dunningrule", "dunningoverride", "dunningpause", "reminder",
                "dunningescalation"):
        assert admin_client.get(f"/admin/collections_app/{url}/").status_code == 200, url
    step = scenario.steps.first()
    assert admin_client.get(f"/admin/collections_app/dunningstep/{step.pk}/change/").status_code == 200


def test_admin_creates_and_ends_a_pause_through_the_services(admin_client, creditor):
    customer = CustomerFactory(creditor=creditor)
    response = admin_client.post("/admin/collections_app/dunningpause/add/", {
        "customer": customer.pk, "kind": "dispute", "until": "", "note": "litige", "invoice": ""})
    assert response.status_code == 302
    pause = customer.dunning_pauses.get()
    admin_client.post("/admin/collections_app/dunningpause/", {"action": "end_pauses", "_selected_action": [pause.pk]})
    pause.refresh_from_db()
    assert pause.status == "ended"
    assert list(Event.objects.filter(type__startswith="dunning.").values_list("type", flat=True).order_by("id")) == [
        "dunning.paused", "dunning.resumed"]


def test_seed_demo_creates_the_demo_scenarios_once():
    out = StringIO()
    call_command("seed_demo", "--json", stdout=out)
    first = json.loads(out.getvalue().splitlines()[-1])
    assert first["collections_app.dunning"] == {"scenarios": 2, "rules": 1, "team_alerts": 1}
    out = StringIO()
    call_command("seed_demo", "--json", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["collections_app.dunning"] == {
        "scenarios": 0, "rules": 0, "team_alerts": 0}
    result = dunning_run(dry_run=True)
    assert result["dry_run"] is True


def test_an_operator_records_a_promise_to_pay_but_cannot_edit_scenarios(creditor):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from config.roles import roles_sync

    roles_sync()
    user = get_user_model().objects.create_user(username="op", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(user)
    customer = CustomerFactory(creditor=creditor)
    response = client.post("/admin/collections_app/dunningpause/add/", {
        "customer": customer.pk, "kind": "promise_to_pay", "until": "2026-12-15", "note": "au téléphone",
        "invoice": ""})
    assert response.status_code == 302
    assert customer.dunning_pauses.get().until == dt.date(2026, 12, 15)
    assert client.get("/admin/collections_app/dunningscenario/").status_code == 200  # reads
    assert client.get("/admin/collections_app/dunningscenario/add/").status_code == 403


def test_preview_lists_the_next_steps_in_one_pass(creditor, smtp_sink):
    from collections_app.dunning.selectors import dunning_preview

    make_scenario(creditor, specs=((-3, "email"), (3, "email"), (20, "email")))
    customer = CustomerFactory(creditor=creditor)
    first = invoice_for(customer, ref="PV-1")
    invoice_for(customer, ref="PV-2", due=DUE + dt.timedelta(days=30))
    paused = invoice_for(CustomerFactory(creditor=creditor), ref="PV-3")
    from collections_app.dunning.services import pause_create

    pause_create(customer=paused.customer, invoice=paused, kind="dispute")
    items = dunning_preview(today=day(-5), days=10)
    assert [(i["invoice"], i["step_offset_days"], i["date"], i["action"]) for i in items] == [
        ("PV-1", -3, day(-3), "send"), ("PV-3", -3, day(-3), "paused"),
        ("PV-1", 3, day(3), "send"), ("PV-3", 3, day(3), "paused")]
    dunning_run(today=day(-3), now=at(day(-3)))
    # the disputed invoice's missed step is shown as due today (still paused), the others on their day
    assert [(i["invoice"], i["step_offset_days"], i["date"]) for i in dunning_preview(today=day(-2), days=10)] == [
        ("PV-3", -3, day(-2)), ("PV-1", 3, day(3)), ("PV-3", 3, day(3))]
    assert first.reminders.get().status == "sent"


def test_an_escalation_alerts_the_finance_team_by_email(creditor, smtp_sink):
    """End to end: the demo rule on dunning.escalated emails the finance group."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from collections_app.dunning.demo import _seed_team_alert
    from notifications.dispatch import dispatch_pending
    from notifications.sender import deliveries_send_due

    _seed_team_alert()
    staff = get_user_model().objects.create_user(username="cc", email="credit.control@creditor.example",
                                                 is_staff=True)
    staff.groups.add(Group.objects.get(name="finance"))
    make_scenario(creditor, specs=((3, "email"),), escalation="alert_team", escalation_after_days=2)
    invoice = invoice_for(CustomerFactory(creditor=creditor, name="Carl Late"), ref="LATE-1")
    for offset in range(3, 6):
        dunning_run(today=day(offset), now=at(day(offset)))
    dispatch_pending()
    deliveries_send_due()
    team = [message for rcpt, message in smtp_sink.messages if rcpt == ["credit.control@creditor.example"]]
    assert len(team) == 1 and team[0]["Subject"] == "Relances épuisées : LATE-1 · Carl Late"
    assert "alert_team" in team[0].get_content()
    assert invoice.dunning_escalations.get().action == "alert_team"


def test_a_run_for_one_creditor_leaves_the_others_alone(creditor, smtp_sink):
    from tests.factories import CreditorFactory

    other = CreditorFactory()
    make_scenario(creditor, specs=((3, "email"),))
    make_scenario(other, specs=((3, "email"),))
    mine = invoice_for(CustomerFactory(creditor=creditor))
    theirs = invoice_for(CustomerFactory(creditor=other))
    result = dunning_run(today=day(3), now=at(day(3)), creditor_id=creditor.pk)
    assert result["counts"] == {"planned_send": 1, "sent": 1}
    assert mine.reminders.get().status == "sent" and not theirs.reminders.exists()
    dunning_run(today=day(3), now=at(day(3)))
    assert theirs.reminders.get().status == "sent" and len(smtp_sink.messages) == 2
