"""Exactly once with real processes on PostgreSQL: two concurrent `run_dunning`, and one killed
in the middle of its run then started again."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.utils import timezone

from collections_app.dunning.models import Reminder
from collections_app.dunning.services import reminders_recover_stuck
from tests.collections_app.dunning.conftest import at, day, invoice_for, make_scenario
from tests.factories import CustomerFactory
from tests.processes import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[3]


def run_dunning_process(smtp_port: int, *args: str) -> subprocess.Popen:
    """`manage.py run_dunning` in its own process, against the test database and the SMTP sink."""
    url = database_url()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.base",
           "SECRET_KEY": "test", "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
           "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port), "SMS_BACKEND": "console"}
    return subprocess.Popen([sys.executable, "manage.py", "run_dunning", "--json", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def last_json(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def invoice_refs(sink) -> list[str]:
    return [message["Subject"].split()[-1] for _rcpt, message in sink.messages]


@pytest.fixture
def forty_invoices(creditor):
    make_scenario(creditor, specs=((-3, "email"), (3, "email")))
    customers = [CustomerFactory(creditor=creditor) for _ in range(8)]
    return [invoice_for(customers[i % 8], ref=f"CC-{i:03d}") for i in range(40)]


def test_two_concurrent_run_dunning_processes_send_each_reminder_once(smtp_sink, forty_invoices):
    class SlowList(list):
        def append(self, item):  # 20 ms a message: both processes are busy at the same time
            time.sleep(0.02)
            super().append(item)

    smtp_sink.messages = SlowList()
    when = at(day(-3)).isoformat()
    # when: two run_dunning processes start together, then both again
    first = [run_dunning_process(smtp_sink.port, "--date", str(day(-3)), "--at", when) for _ in range(2)]
    results = [last_json(p) for p in first]
    again = [run_dunning_process(smtp_sink.port, "--date", str(day(-3)), "--at", when) for _ in range(2)]
    results += [last_json(p) for p in again]
    # then each of the 40 reminders reached the sink exactly once
    refs = invoice_refs(smtp_sink)
    assert sorted(refs) == sorted(i.external_ref for i in forty_invoices)
    assert Counter(refs).most_common(1)[0][1] == 1
    assert sum(r["counts"].get("sent", 0) for r in results) == 40
    assert Reminder.objects.filter(status="sent").count() == 40
    # and the next step, on its day, also once
    when = at(day(3)).isoformat()
    procs = [run_dunning_process(smtp_sink.port, "--date", str(day(3)), "--at", when) for _ in range(2)]
    for p in procs:
        last_json(p)
    assert len(smtp_sink.messages) == 80 and Counter(invoice_refs(smtp_sink)).most_common(1)[0][1] == 2


def test_a_process_killed_mid_run_then_restarted_sends_nothing_twice_and_loses_nothing(smtp_sink, forty_invoices):
    holder: dict = {}
    received = {"n": 0}

    class KillingList(list):
        def append(self, item):  # runs in the SMTP sink's thread, as the message is received
            super().append(item)
            received["n"] += 1
            if received["n"] == 7 and "proc" in holder:
                os.kill(holder["proc"].pid, signal.SIGKILL)

    smtp_sink.messages = KillingList()
    when = at(day(-3)).isoformat()
    # when: the process is killed while the 7th message is being handed over
    holder["proc"] = proc = run_dunning_process(smtp_sink.port, "--date", str(day(-3)), "--at", when)
    proc.wait(timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
    holder.clear()
    assert len(smtp_sink.messages) == 7
    statuses = Counter(Reminder.objects.values_list("status", flat=True))
    assert statuses["sent"] == 6 and statuses["sending"] == 1
    # and it is started again (the interrupted row is too recent to be called stuck: it is left alone)
    result = last_json(run_dunning_process(smtp_sink.port, "--date", str(day(-3)), "--at", when))
    # then every other reminder went out, none twice
    refs = invoice_refs(smtp_sink)
    assert len(refs) == 40 and len(set(refs)) == 40
    assert result["counts"]["sent"] == 33
    # the interrupted one is recorded as unknown once it is old enough, and never re-sent
    assert reminders_recover_stuck(now=timezone.now() + dt.timedelta(minutes=11)) == 1
    last_json(run_dunning_process(smtp_sink.port, "--date", str(day(-3)), "--at", when))
    assert len(smtp_sink.messages) == 40
    assert Counter(Reminder.objects.values_list("status", flat=True)) == {"sent": 39, "unknown": 1}
