"""Dunning: planning a day for 1,000,000 open invoices across 10 scenarios, and reminders sent
per second into a local aiosmtpd sink.

Planning (selectors.dunning_plan, what run_dunning does before claiming): keyset batches of
10,000 invoices, a fixed number of queries per batch (overrides, existing reminders and
escalations, one per pause provider), scenario assignment by tag rules, the due step, the
missed steps, pauses and the customer's send window decided in memory. Baseline in the same
run: a bare SELECT of the very same rows and columns with the same keyset batches.
ratio = planning time / bare SELECT time.

Sending (dunning_run on a separate creditor): plan, claim rows, per reminder one transaction
re-reading the invoice under lock (pay link created on first use, template rendered), the
SMTP handoff over one connection, the result and its outbox event committed. Baseline: raw
smtplib sending the same rendered messages over one connection.
"""
from __future__ import annotations

import datetime as dt
import smtplib
import socket
import time
from email.message import EmailMessage
from zoneinfo import ZoneInfo

NAME = "dunning"
DESCRIPTION = "plan a day for 1M open invoices / 10 scenarios vs bare SELECT; reminders/s into SMTP vs smtplib"

TODAY = dt.date(2026, 12, 1)  # a Tuesday
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scenarios(creditor, count: int):
    from collections_app.dunning.models import DunningRule
    from collections_app.dunning.services import scenario_create

    template = {"fr": {"subject": "Relance {{ payload.invoice_external_ref }}",
                       "body_text": "Bonjour {{ recipient.name }}, reste {{ payload.amount_due|money:payload.currency }}"
                                    " sur la facture {{ payload.invoice_external_ref }} (échéance "
                                    "{{ payload.due_date }}). Payer : {{ payload.pay_url }} · réf "
                                    "{{ payload.short_reference }} · QR {{ payload.qr_url }}",
                       "sms_text": "Facture {{ payload.invoice_external_ref }} {{ payload.pay_url }}"}}
    scenarios = []
    for n in range(count):
        offsets = [-3 - n % 3, 3 + n, 10 + n, 25 + n]  # the first scenario starts at J-3
        scenario = scenario_create(
            creditor=creditor, name=f"bench-{n}", is_default=(n == 0), weekdays=[0, 1, 2, 3, 4, 5, 6],
            skip_non_business_days=False,
            steps=[{"offset_days": o, "channel": "email", "templates": template} for o in offsets])
        scenarios.append(scenario)
        if n:
            DunningRule.objects.create(creditor=creditor, scenario=scenario, priority=n, tag=f"seg{n}")
    return scenarios


def _bulk_invoices(creditor_id: int, customers: int, invoices: int, prefix: str) -> None:
    """Customers and invoices by INSERT … SELECT generate_series: no ORM object per row."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("""
            INSERT INTO collections_app_customer (created_at, updated_at, creditor_id, external_ref, name,
                company_name, is_business, email, phone, locale, time_zone, address_line1, postal_code, city,
                country, tags, currency, credit_balance, portal_token, notes)
            SELECT now(), now(), %s, %s || g, 'Client ' || g, '', false, 'c' || g || '@example.fr',
                '+3361' || lpad(g::text, 7, '0'), 'fr',
                (ARRAY['Europe/Paris', 'Europe/London', 'America/Martinique', 'Indian/Reunion'])[1 + g %% 4],
                '', '', '', 'FR', jsonb_build_array('seg' || (g %% 10)), 'EUR', 0, md5(%s || g), ''
            FROM generate_series(1, %s) g""", [creditor_id, f"{prefix}C", prefix, customers])
        cur.execute("SELECT min(id) FROM collections_app_customer WHERE creditor_id = %s", [creditor_id])
        first = cur.fetchone()[0]
        cur.execute("""
            INSERT INTO collections_app_invoice (created_at, updated_at, creditor_id, customer_id, external_ref,
                description, currency, amount_total, amount_paid, amount_written_off, issue_date, due_date, status)
            SELECT now(), now(), %s, %s + (g %% %s), %s || g, '', 'EUR', 40 + (g %% 900), 0, 0,
                %s::date - 45, %s::date - ((g %% 70) - 12), 'open'
            FROM generate_series(1, %s) g""",
                    [creditor_id, first, customers, f"{prefix}I", TODAY, TODAY, invoices])
        cur.execute("ANALYZE collections_app_customer; ANALYZE collections_app_invoice")


def _mark_first_steps_sent(creditor_id: int) -> int:
    """A realistic day: most invoices already had their first reminders (bulk SQL again)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("""
            INSERT INTO collections_app_reminder (uuid, invoice_id, step_id, scenario_id, status, step_date,
                run_date, claim_token, channel, channels_done, locale, email, phone, currency, subject, body_text,
                sms_text, skip_reason, attempts, error, claimed_at, sent_at)
            SELECT gen_random_uuid(), i.id, s.id, s.scenario_id, 'sent', i.due_date + s.offset_days,
                i.due_date + s.offset_days, gen_random_uuid(), 'email', '["email"]', 'fr', '', '', 'EUR', '', '',
                '', '', 1, '', now(), now()
            FROM collections_app_invoice i
            JOIN collections_app_customer c ON c.id = i.customer_id
            JOIN collections_app_dunningscenario sc ON sc.creditor_id = i.creditor_id
                 AND sc.name = 'bench-' || substr(c.tags ->> 0, 4)
            JOIN collections_app_dunningstep s ON s.scenario_id = sc.id
            WHERE i.creditor_id = %s AND i.due_date + s.offset_days < %s::date - 1 AND i.id %% 3 <> 0""",
                    [creditor_id, TODAY])
        return cur.rowcount


def _plan_speed(ctx, creditor_id: int, n: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from collections_app.dunning.selectors import INVOICE_FIELDS, dunning_plan
    from collections_app.models import Invoice

    batch = 10_000
    min_offset = -5
    started = time.perf_counter()
    actions: dict[str, int] = {}
    with CaptureQueriesContext(connection) as queries:
        for items in dunning_plan(today=TODAY, now=NOW, creditor_id=creditor_id, batch_size=batch):
            for item in items:
                actions[item.action] = actions.get(item.action, 0) + 1
    ours = time.perf_counter() - started
    plan_queries = len(queries)
    qs = Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES, creditor__is_active=True,
                                due_date__lte=TODAY - dt.timedelta(days=min_offset), creditor_id=creditor_id)
    started = time.perf_counter()
    evaluated, last = 0, 0
    while True:
        rows = list(qs.filter(pk__gt=last).order_by("pk").values_list(*INVOICE_FIELDS)[:batch])
        if not rows:
            break
        evaluated += len(rows)
        last = rows[-1][0]
        if len(rows) < batch:
            break
    bare = time.perf_counter() - started
    return {"ours": ours, "bare": bare, "evaluated": evaluated, "actions": actions, "queries": plan_queries}


def _send_speed(ctx, n: int) -> dict:
    from aiosmtpd.controller import Controller
    from django.test import override_settings

    from collections_app.dunning.models import Reminder
    from collections_app.dunning.services import dunning_run
    from collections_app.models import Creditor

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            received.append(len(envelope.content))
            return "250 OK"

    port = _free_port()
    smtp = Controller(Handler(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        creditor = Creditor.objects.create(name="bench dunning sends", email="c@example.fr")
        _scenarios(creditor, 1)
        _bulk_invoices(creditor.pk, n, n, "BS")
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                               EMAIL_PORT=port, EMAIL_USE_TLS=False, EMAIL_HOST_USER="", EMAIL_HOST_PASSWORD=""):
            # every invoice due in 3 days (its courtesy step, J-3, goes out today), every customer in Paris
            from collections_app.models import Customer, Invoice

            Invoice.objects.filter(creditor=creditor).update(due_date=TODAY + dt.timedelta(days=3))
            Customer.objects.filter(creditor=creditor).update(time_zone="Europe/Paris")
            started = time.perf_counter()
            result = dunning_run(today=TODAY, now=NOW, creditor_id=creditor.pk)
            ours = time.perf_counter() - started
        sent = result["counts"].get("sent", 0)
        assert sent == n == len(received), (result, n, len(received))
        messages = list(Reminder.objects.filter(invoice__creditor=creditor).values_list("email", "subject",
                                                                                        "body_text"))
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port) as client:
            for to, subject, body in messages:
                message = EmailMessage()
                message["From"], message["To"], message["Subject"] = "bench@example.fr", to, subject
                message.set_content(body)
                client.send_message(message)
        bare = time.perf_counter() - started
    finally:
        smtp.stop()
    return {"ours": ours, "bare": bare, "sent": sent}


def run(ctx) -> dict:
    from django.db import connection

    from collections_app.models import Creditor

    if connection.vendor != "postgresql":
        raise RuntimeError("the dunning benchmark needs PostgreSQL (scripts/bench.sh starts one)")
    n = ctx.scale(1_000_000, 50_000)
    customers = max(1, n // 10)
    creditor = Creditor.objects.create(name=f"bench dunning {time.time()}", email="c@example.fr")
    started = time.perf_counter()
    _scenarios(creditor, 10)
    _bulk_invoices(creditor.pk, customers, n, f"B{creditor.pk}-")
    prior = _mark_first_steps_sent(creditor.pk)
    with connection.cursor() as cur:
        cur.execute("ANALYZE collections_app_reminder")
    setup = time.perf_counter() - started
    plan = _plan_speed(ctx, creditor.pk, n)
    sends = _send_speed(ctx, ctx.scale(2000, 300))
    ratio = plan["ours"] / plan["bare"]
    return {
        "ratio": ratio,
        "ratio_meaning": "planning time / bare SELECT of the same rows in the same batches (lower is better; "
                         "1.0 = planning costs nothing beyond reading the invoices)",
        "figures": {
            "open_invoices": n,
            "scenarios": 10,
            "setup_s (bulk SQL inserts)": round(setup, 1),
            "prior_reminders": prior,
            "invoices_evaluated": plan["evaluated"],
            "plan_invoices_per_s_ours": round(plan["evaluated"] / plan["ours"]),
            "bare_select_rows_per_s": round(plan["evaluated"] / plan["bare"]),
            "plan_s": round(plan["ours"], 2),
            "plan_queries_total": plan["queries"],
            "plan_queries_per_10k_invoices": round(plan["queries"] / max(1, plan["evaluated"] / 10_000), 1),
            "plan_actions": plan["actions"],
            "reminders_sent": sends["sent"],
            "reminders_per_s_ours": round(sends["sent"] / sends["ours"], 1),
            "emails_per_s_bare_smtplib": round(sends["sent"] / sends["bare"], 1),
            "send_ratio": round(sends["ours"] / sends["bare"], 2),
        },
    }
