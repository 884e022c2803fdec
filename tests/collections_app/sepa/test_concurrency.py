"""Two workers at once on the same PostgreSQL (two real processes): nothing is debited or
charged twice, no transaction is in two files."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from collections_app.models import Installment, Payment
from collections_app.retries.models import CollectionAttempt
from collections_app.sepa.models import SepaFile
from tests.collections_app.collection_helpers import DEBTOR_IBANS, card_plan, sepa_plan
from tests.factories import CreditorFactory, CustomerFactory
from tests.processes import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[3]
MONDAY = "2026-11-30"


def start(*args: str) -> subprocess.Popen:
    url = database_url()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    return subprocess.Popen([sys.executable, "manage.py", *args, "--json"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_twice_at_once(*args: str) -> list[dict]:
    procs = [start(*args), start(*args)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()[-3000:]
        outputs.append(json.loads(out.decode().strip().splitlines()[-1]))
    return outputs


def end_to_end_ids(sepa_file: SepaFile) -> list[str]:
    tree = etree.fromstring(sepa_file.content.encode())
    return [e.text for e in tree.iter("{*}EndToEndId")]


def test_two_collection_runs_at_once_debit_each_instalment_once():
    creditors = CreditorFactory.create_batch(2)
    for creditor in creditors:
        for i, customer in enumerate(CustomerFactory.create_batch(15, creditor=creditor)):
            sepa_plan(customer, first_due=dt.date(2026, 12, 1), iban=DEBTOR_IBANS[i % len(DEBTOR_IBANS)])
    # when
    outputs = run_twice_at_once("sepa_export", "--date", MONDAY)
    # then: 30 debits between the two workers, each once
    assert sum(o["submitted"] for o in outputs) == 30
    assert Payment.objects.filter(method="sepa_dd").count() == 30
    assert SepaFile.objects.count() == 2  # one per creditor (same date, FRST)
    ids = [e2e for f in SepaFile.objects.all() for e2e in end_to_end_ids(f)]
    assert len(ids) == len(set(ids)) == 30
    assert not Counter(CollectionAttempt.objects.values_list("installment_id", flat=True)) - Counter(
        Installment.objects.filter(sequence=1).values_list("pk", flat=True))
    # and again, both at once: nothing new
    again = run_twice_at_once("sepa_export", "--date", MONDAY)
    assert sum(o["submitted"] for o in again) == 0 and SepaFile.objects.count() == 2


def test_two_card_runs_and_two_retry_runs_at_once_charge_each_attempt_once():
    creditor = CreditorFactory()
    customers = CustomerFactory.create_batch(24, creditor=creditor)
    good = [card_plan(c, first_due=dt.date(2026, 11, 30)) for c in customers[:12]]
    poor = [card_plan(c, first_due=dt.date(2026, 11, 30), number="4000000000009995") for c in customers[12:]]
    # when: two card runs at once
    outputs = run_twice_at_once("charge_cards", "--date", MONDAY)
    # then: every due instalment charged once
    assert sum(o["submitted"] for o in outputs) == 24
    assert Payment.objects.count() == 24
    assert Payment.objects.filter(status="succeeded").count() == 12
    assert all(p.installments.get(sequence=1).status == "paid" for p in good)
    retries = CollectionAttempt.objects.filter(number=2, status="scheduled")
    assert retries.count() == 12  # insufficient funds retries (default policy: 2 new attempts, 5 business days)
    retry_day = retries.first().scheduled_for.isoformat()
    # when: two retry runs at once on the retry date
    outputs = run_twice_at_once("run_retries", "--date", retry_day)
    # then: each retry charged once, each third attempt scheduled once
    assert sum(o["submitted"] for o in outputs) == 12
    assert Payment.objects.filter(attempt=2).count() == 12
    assert CollectionAttempt.objects.filter(number=3).count() == 12
    assert all(Payment.objects.filter(installment__plan=p, attempt=2).count() == 1 for p in poor)


def _file_writer_killed(out: Path, when: str) -> subprocess.Popen:
    """The write-sepa-files task in its own process, killed by SIGKILL at the moment the file
    gets its final name: just before the rename, or just after it."""
    code = (
        "import os, signal, django; django.setup()\n"
        "from django.conf import settings; settings.SEPA_OUTGOING_DIR = os.environ['OUT_DIR']\n"
        "real = os.replace\n"
        "def replace(src, dst):\n"
        f"    if {when!r} == 'after':\n"
        "        real(src, dst)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.replace = replace\n"
        "from collections_app.sepa.tasks import write_pending_files; write_pending_files()\n")
    url = database_url()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test", "OUT_DIR": str(out)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_file_writer_killed_at_the_rename_hands_the_bank_each_file_once(tmp_path, settings, when):
    """Found by the chaos run's review (scripts/chaos.py): the pain.008 file was renamed to its
    final name before its "written" status committed. A worker killed in between left a visible
    file, which the bank channel takes, and a file still "generated", which the next pass wrote
    again: the bank got it twice and would have debited every debtor twice."""
    import signal

    from collections_app.sepa.services import sepa_export
    from collections_app.sepa.tasks import write_pending_files

    settings.SEPA_OUTGOING_DIR = out = tmp_path / "out"
    bank = tmp_path / "bank"
    bank.mkdir()

    def bank_channel_takes_files():  # the EBICS client: every complete file leaves the folder
        for path in sorted(out.glob("*/*.xml")):
            path.rename(bank / f"{len(list(bank.iterdir()))}-{path.name}")

    customer = CustomerFactory(creditor=CreditorFactory())
    sepa_plan(customer, first_due=dt.date(2026, 12, 1), iban=DEBTOR_IBANS[0])
    sepa_export(today=dt.date.fromisoformat(MONDAY), write=False)
    sepa_file = SepaFile.objects.get()
    # when the writer is killed at its rename, the bank channel passes, then the schedule runs twice
    proc = _file_writer_killed(out, when)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    bank_channel_takes_files()
    for _ in range(2):
        write_pending_files()
        bank_channel_takes_files()
    # then the bank got the file exactly once, and nothing is left half written
    received = sorted(bank.iterdir())
    assert [p.read_text() for p in received] == [sepa_file.content], [p.name for p in received]
    assert not list(out.glob("*/.*"))
    sepa_file.refresh_from_db()
    assert sepa_file.status == SepaFile.Status.WRITTEN
