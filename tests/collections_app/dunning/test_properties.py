"""Properties of the planner over random scenarios and random run calendars (downtime included)."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collections_app.dunning.models import Reminder
from collections_app.dunning.services import dunning_run
from tests.collections_app.dunning.conftest import DUE, at, invoice_for, make_scenario
from tests.factories import CreditorFactory, CustomerFactory

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


offsets = st.lists(st.integers(min_value=-10, max_value=40), min_size=1, max_size=5, unique=True)
run_days = st.lists(st.integers(min_value=-12, max_value=60), min_size=1, max_size=12, unique=True).map(sorted)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step_offsets=offsets, days=run_days, due_shift=st.integers(min_value=0, max_value=5))
def test_each_run_sends_at_most_the_latest_due_step_and_never_a_step_twice(step_offsets, days, due_shift):
    try:
        with transaction.atomic():
            mail.outbox = []
            creditor = CreditorFactory()
            make_scenario(creditor, specs=tuple((o, "email") for o in step_offsets))
            due = DUE + dt.timedelta(days=due_shift)
            invoice = invoice_for(CustomerFactory(creditor=creditor), due=due)
            ordered = sorted(step_offsets)
            previous_sent = -1
            for offset in days:
                today = DUE + dt.timedelta(days=offset)
                before = len(mail.outbox)
                dunning_run(today=today, now=at(today))
                sent_now = len(mail.outbox) - before
                # never a burst: at most one message per run
                assert sent_now <= 1
                due_steps = [o for o in ordered if due + dt.timedelta(days=o) <= today]
                rows = {r.step.offset_days: r for r in Reminder.objects.filter(invoice=invoice).select_related("step")}
                if sent_now:
                    # what went out is the latest step due that day, and nothing later was recorded
                    latest = due_steps[-1]
                    assert rows[latest].status == "sent" and rows[latest].run_date == today
                    assert ordered.index(latest) > previous_sent
                    previous_sent = ordered.index(latest)
                # every step due is accounted for once it or a later one was handled
                if due_steps and due_steps[-1] in rows:
                    assert set(due_steps) <= set(rows)
                    assert all(rows[o].status == "skipped" and rows[o].skip_reason == "superseded"
                               for o in due_steps[:-1] if rows[o].run_date == today)
            # each step at most once, overall
            subjects = [m.subject for m in mail.outbox]
            assert len(subjects) == Reminder.objects.filter(invoice=invoice, status="sent").count()
            raise Rollback
    except Rollback:
        pass
