"""A worker killed in the middle of an import: nothing of it is written, the job does not stay
"running" for ever, and it runs again to the end (real processes, PostgreSQL)."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as dj_settings

from collections_app.models import Invoice, PaymentRequest
from connectors.models import ImportJob
from connectors.services import import_job_create, import_jobs_recover
from connectors.tasks import run_import_job
from notifications.models import Event
from tests.factories import CreditorFactory
from tests.processes import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
ROWS = 40_000


def _command(*args: str) -> subprocess.Popen:
    url = database_url()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.base", "SECRET_KEY": "test",
           "MEDIA_ROOT": str(dj_settings.MEDIA_ROOT)}
    return subprocess.Popen([sys.executable, "manage.py", *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _big_file(path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        out.write("reference;customer_ref;name;amount;issue_date;due_date\n")
        for i in range(ROWS):
            out.write(f"K-{i:06d};C{i % 500};Client {i % 500};{10 + i % 90},50;01/03/2026;31/03/2026\n")
    return path


def test_an_import_whose_worker_is_killed_runs_again_to_the_end(tmp_path):
    creditor = CreditorFactory()
    with open(_big_file(tmp_path / "big.csv"), "rb") as handle:
        from django.core.files import File

        job = import_job_create(creditor=creditor, filename="big.csv", content=File(handle, name="big.csv"))
    # given a worker (the cluster's task) importing the file
    worker = _command("shell", "-c", f"from connectors.tasks import run_import_job; run_import_job({job.pk})")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status == ImportJob.Status.RUNNING and job.rows_total > 0:
                break
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        assert job.status == ImportJob.Status.RUNNING
        # a recovery pass while it works leaves it alone
        assert import_jobs_recover() == []
        # when the worker is killed in the middle
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING
    assert not Invoice.objects.filter(creditor=creditor).exists()  # its writing died with it
    # then the next recovery pass puts it back, and it runs again to the end
    assert [j.pk for j in import_jobs_recover()] == [job.pk]
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PENDING and "runs again" in job.message
    assert run_import_job(job.pk) == ImportJob.Status.SUCCEEDED
    assert Invoice.objects.filter(creditor=creditor).count() == ROWS
    assert PaymentRequest.objects.filter(creditor=creditor).count() == ROWS
    statuses = list(Event.objects.filter(type__startswith="invoice_import.", payload__import_job_id=job.pk)
                    .order_by("pk").values_list("type", flat=True))
    assert statuses == ["invoice_import.started", "invoice_import.requeued", "invoice_import.started",
                        "invoice_import.finished"]


def test_an_api_import_whose_worker_died_is_failed_not_left_running():
    creditor = CreditorFactory()
    job = import_job_create(creditor=creditor, source=ImportJob.Source.API, filename="api-3-rows")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)  # its web worker died
    assert [j.pk for j in import_jobs_recover()] == [job.pk]
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "Send the call again" in job.message


def _status_writer_killed(export_dir: Path, when: str) -> subprocess.Popen:
    """`write_status_files` (the scheduled task) in its own process, killed by SIGKILL at the
    moment its status file is renamed to its final name: just before, or just after."""
    code = (
        "import os, signal, django; django.setup()\n"
        "from django.conf import settings; settings.CONNECTORS_EXPORT_DIR = os.environ['EXPORT_DIR']\n"
        "real = os.replace\n"
        "def replace(src, dst):\n"
        f"    if {when!r} == 'after':\n"
        "        real(src, dst)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.replace = replace\n"
        "from connectors.tasks import write_status_files; write_status_files()\n")
    url = database_url()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "EXPORT_DIR": str(export_dir)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_status_file_writer_killed_at_the_rename_exports_each_event_once(tmp_path, settings, when):
    import csv
    import io

    from connectors.exports import export_cursor_create
    from connectors.models import ExportJob
    from connectors.tasks import write_status_files
    from notifications.dispatch import dispatch_pending
    from tests.factories import CustomerFactory, make_request

    settings.CONNECTORS_EXPORT_DIR = tmp_path / "out"
    creditor = CreditorFactory()
    cursor = export_cursor_create(name="erp-status", creditor=creditor)
    customer = CustomerFactory(creditor=creditor)
    for _ in range(3):
        make_request(customer)
    dispatch_pending()
    # when the writer is killed at its rename, then the schedule runs again, twice
    proc = _status_writer_killed(tmp_path / "out", when)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    time.sleep(1.1)  # the next run comes later (file names carry the second they were written in)
    write_status_files()
    write_status_files()
    # then what an ERP reads (the visible files) holds every queued event exactly once
    folder = tmp_path / "out" / "erp-status"
    visible = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    ids = [int(row["event_id"]) for path in visible for row in csv.DictReader(io.StringIO(path.read_text("utf-8")))]
    expected = list(Event.objects.filter(type__in=["invoice.created", "payment_request.created"],
                                         creditor_id=creditor.pk).order_by("pk").values_list("pk", flat=True))
    assert ids == expected and len(expected) == 6
    assert len(visible) == 1 and not list(folder.glob(".*"))
    assert [Path(p) for p in ExportJob.objects.filter(cursor=cursor).values_list("path", flat=True)] == visible


@pytest.mark.django_db
def test_a_return_file_that_a_dead_worker_did_not_write_is_written_by_the_next_poll(tmp_path):
    from django.core.files import File
    from django.utils import timezone

    from connectors.services import import_job_run, import_jobs_write_missing_return_files
    from connectors.tasks import poll_drop_folder

    creditor = CreditorFactory()
    text = ("Titre\r\nN° facture;Code client;Nom;Montant TTC;Échéance\r\nRF-1;K1;Client Un;100,00;31/12/2099\r\n"
            "RF-2;K2;Client Deux;-5,00;31/12/2099\r\nRF-3;K1;Client Un;20,00;31/12/2099\r\n")
    path = tmp_path / "erp.csv"
    path.write_bytes(text.encode("cp1252"))
    with open(path, "rb") as handle:
        job = import_job_create(creditor=creditor, filename="erp.csv", content=File(handle, name="erp.csv"),
                                mode=ImportJob.Mode.VALID_ROWS)
    job, _run = import_job_run(job=job)
    expected = job.return_file.open("rb").read()
    # given the worker died right after the import committed: no return file
    ImportJob.objects.filter(pk=job.pk).update(return_file="")
    # then a poll soon after leaves it to that worker, a later one writes it, once
    assert import_jobs_write_missing_return_files() == []
    later = timezone.now() + dt.timedelta(minutes=5)
    assert [j.pk for j in import_jobs_write_missing_return_files(now=later)] == [job.pk]
    job.refresh_from_db()
    assert job.return_file.open("rb").read() == expected
    assert b"RF-1" in expected and b"RF-3" in expected and b"RF-2" not in expected
    assert import_jobs_write_missing_return_files(now=later) == []
    poll_drop_folder()  # the every-minute task calls it
