"""Invoice import end to end: a generated CSV of 1,000,000 invoices (200,000 customers) read,
validated and written as customers, invoices, payment requests (tokens, short references)
and their outbox events, against two baselines measured in the same run on the same file:
(a) PostgreSQL `COPY` of the file into a bare table of text columns, and (b)
django-import-export importing the first 10,000 of the same rows (its own row-by-row import)."""
from __future__ import annotations

import csv
import datetime as dt
import random
import time
import uuid
from pathlib import Path

NAME = "import_invoices"
DESCRIPTION = "1M-row invoice CSV import vs PostgreSQL COPY and django-import-export (rows/s)"

HEADER = ["numero_facture", "code_client", "nom", "email", "telephone", "montant", "devise", "date_facture",
          "date_echeance", "libelle"]


def generate(path: Path, rows: int, customers: int, run_id: str) -> None:
    rng = random.Random(42)
    start = dt.date(2026, 1, 1)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(HEADER)
        for i in range(rows):
            c = rng.randrange(customers)
            issued = start + dt.timedelta(days=rng.randrange(300))
            cents = rng.randrange(500, 500_000)
            writer.writerow([
                f"{run_id}-F{i:07d}", f"{run_id}-C{c:06d}", f"Client {c} SARL", f"client{c}@example.fr",
                f"06{c:08d}", f"{cents // 100},{cents % 100:02d}", "EUR", issued.strftime("%d/%m/%Y"),
                (issued + dt.timedelta(days=30)).strftime("%d/%m/%Y"), f"Facture {i} – prestation",
            ])


def copy_baseline(path: Path) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy_raw")
        cursor.execute("CREATE TABLE bench_copy_raw (" + ", ".join(f"{h} text" for h in HEADER) + ")")
        started = time.perf_counter()
        with cursor.cursor.copy("COPY bench_copy_raw FROM STDIN (FORMAT csv, HEADER true, DELIMITER ';')") as copy, \
                open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_copy_raw")
    return elapsed


def import_export_baseline(path: Path, rows: int) -> float:
    """django-import-export's own import (ModelResource, row by row), customers created first
    (not timed) so that it only has invoices to write, through the same services."""
    import tablib
    from django.db import transaction

    from collections_app import services
    from connectors.resources import InvoiceResource
    from tests.factories import CreditorFactory

    creditor = CreditorFactory()
    dataset = tablib.Dataset(headers=["creditor", "external_ref", "customer_ref", "description", "currency",
                                      "amount_total", "issue_date", "due_date"])
    customers = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=";")
        next(reader)
        for _, record in zip(range(rows), reader, strict=False):
            customers.setdefault(record[1], record[2])
            day, month, year = record[7].split("/")
            dday, dmonth, dyear = record[8].split("/")
            dataset.append([creditor.pk, record[0], record[1], record[9], record[6], record[5].replace(",", "."),
                            f"{year}-{month}-{day}", f"{dyear}-{dmonth}-{dday}"])
    with transaction.atomic():
        for ref, name in customers.items():
            services.customer_create(creditor=creditor, external_ref=ref, name=name)
    started = time.perf_counter()
    result = InvoiceResource().import_data(dataset, dry_run=False, raise_errors=True, use_transactions=True)
    elapsed = time.perf_counter() - started
    assert not result.has_errors() and result.totals["new"] == rows, result.totals
    return elapsed


def ours(path: Path) -> tuple[float, object]:
    from django.core.files import File

    from connectors.services import import_job_create, import_job_run
    from tests.factories import CreditorFactory

    creditor = CreditorFactory()
    with open(path, "rb") as handle:
        job = import_job_create(creditor=creditor, filename=path.name, content=File(handle, name=path.name),
                                source="command")
    marks: list[tuple[str, float]] = []

    def progress(phase: str, fraction: float, rows: int) -> None:
        if not marks or marks[-1][0] != phase:
            marks.append((phase, time.perf_counter()))

    started = time.perf_counter()
    job, _run = import_job_run(job=job, write_return_file=False, progress=progress)
    elapsed = time.perf_counter() - started
    assert job.status == "succeeded", (job.status, job.message, job.errors[:5])
    # Seconds per phase; "commit" is the end of the last phase to the end (deferred FK checks).
    ends = [t for _p, t in marks[1:]] + [started + elapsed]
    # Invoices, requests and events are written chunk by chunk: a phase comes back once per chunk.
    phases: dict[str, float] = {}
    for (name, begin), end in zip(marks, ends, strict=True):
        key = f"phase_{name.replace(' ', '_')}_s"
        phases[key] = phases.get(key, 0.0) + end - begin
    job.phases = {key: round(value, 1) for key, value in phases.items()}
    return elapsed, job


def run(ctx) -> dict:
    from django.db import connection

    if connection.vendor != "postgresql":
        raise RuntimeError("this benchmark needs PostgreSQL (scripts/bench.sh starts one)")
    rows = ctx.scale(1_000_000, 50_000)
    customers = max(rows // 5, 1)
    iie_rows = ctx.scale(10_000, 2_000)
    run_id = uuid.uuid4().hex[:6]
    path = ctx.workdir / f"invoices-{rows}.csv"
    t0 = time.perf_counter()
    generate(path, rows, customers, run_id)
    generated_s = time.perf_counter() - t0
    try:
        copy_s = copy_baseline(path)
        ours_s, job = ours(path)
        iie_s = import_export_baseline(path, iie_rows)
    finally:
        size_mb = path.stat().st_size / 1e6
        path.unlink(missing_ok=True)
    ours_rps = rows / ours_s
    copy_rps = rows / copy_s
    iie_rps = iie_rows / iie_s
    return {
        "ratio": ours_rps / copy_rps,
        "ratio_meaning": "our end-to-end import rows/s / PostgreSQL COPY rows/s of the same file (goal >= 0.25)",
        "figures": {
            "rows": rows, "file_mb": round(size_mb, 1), "customers": job.customers_created,
            "invoices_created": job.invoices_created, "payment_requests_created": job.payment_requests_created,
            "ours_s": round(ours_s, 2), "ours_rows_per_s": round(ours_rps),
            "copy_s": round(copy_s, 2), "copy_rows_per_s": round(copy_rps),
            "import_export_rows": iie_rows, "import_export_s": round(iie_s, 2),
            "import_export_rows_per_s": round(iie_rps, 1),
            "ours_vs_copy": round(ours_rps / copy_rps, 3),
            "ours_vs_import_export": round(ours_rps / iie_rps, 1),
            "generate_s": round(generated_s, 1),
            **job.phases,
        },
    }
