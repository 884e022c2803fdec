"""Business operations of the ERP connectors: invoice imports (files, drop folder, API).

The admin, the API, the command and the drop-folder job all call these functions.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app.dropfolders import take_all
from collections_app.errors import ValidationFailed
from collections_app.models import Creditor, PaymentRequest
from collections_app.selectors import transfer_beneficiaries
from collections_app.virtual_ibans.models import VirtualIBANRange
from collections_app.virtual_ibans.services import virtual_ibans_ensure_bulk
from connectors.importing.fields import names_required_fields
from connectors.importing.normalise import RowError
from connectors.importing.pipeline import ImportRun, run_import, valid_refs
from connectors.importing.reader import ImportFileError, RowSource, dict_rows, open_rows
from connectors.models import ColumnMapping, ImportJob
from connectors.spreadsheet import SafeWriter
from notifications.services import event_emit

logger = logging.getLogger(__name__)

ERRORS_KEPT = 20_000
API_MAX_ROWS = 10_000
RETURN_COLUMNS = ["external_ref", "pay_url", "short_reference", "virtual_iban", "iban", "bic",
                  "transfer_reference", "qr_code_url"]


def _job_payload(job: ImportJob, previous: str | None) -> dict[str, Any]:
    return {"import_job_id": job.pk, "status": job.status, "previous_status": previous, "source": job.source,
            "filename": job.filename, "dry_run": job.dry_run, "mode": job.mode, "rows_total": job.rows_total,
            "rows_valid": job.rows_valid, "rows_rejected": job.rows_rejected,
            "customers_created": job.customers_created, "invoices_created": job.invoices_created,
            "invoices_updated": job.invoices_updated, "invoices_unchanged": job.invoices_unchanged,
            "payment_requests_created": job.payment_requests_created}


@transaction.atomic
def import_job_create(*, creditor: Creditor, source: str = ImportJob.Source.UPLOAD, filename: str = "",
                      content: bytes | File | None = None, mapping: ColumnMapping | None = None,
                      mode: str = ImportJob.Mode.ALL_OR_NOTHING, dry_run: bool = False,
                      created_by=None, stored_name: str = "") -> ImportJob:
    """stored_name: the name the file is kept under (default: filename's)."""
    if mapping is not None and mapping.creditor_id != creditor.pk:
        raise ValidationFailed(_("The column mapping belongs to another creditor."), field="mapping")
    if mode not in ImportJob.Mode.values:
        raise ValidationFailed(_("Unknown mode %(mode)s.") % {"mode": mode}, field="mode")
    job = ImportJob(creditor=creditor, source=source, filename=filename[:255], mapping=mapping, mode=mode,
                    dry_run=dry_run, created_by=created_by)
    if content is not None:
        file = ContentFile(content) if isinstance(content, bytes) else content
        job.file.save(stored_name or Path(filename or "import.csv").name, file, save=False)
    job.save()
    return job


def _claim(job: ImportJob) -> ImportJob | None:
    """Pending → running, committed at once: a second worker running the same job id gets None."""
    with transaction.atomic():
        claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PENDING).update(
            status=ImportJob.Status.RUNNING, started_at=timezone.now(), phase="reading")
        if not claimed:
            return None
        job = ImportJob.objects.get(pk=job.pk)
        event_emit(type="invoice_import.started", creditor_id=job.creditor_id,
                   payload=_job_payload(job, ImportJob.Status.PENDING), subjects={"import_job": job.pk})
    return job


def _progress_writer(job: ImportJob, callback: Callable[[str, float, int], None] | None):
    def report(phase: str, fraction: float, rows: int) -> None:
        # Outside the import's transaction (reading phase) this commits at once: the admin's
        # progress bar polls it. Writing happens in one transaction and shows as one phase.
        percent = int(fraction * 90) if phase == "reading" else 90 + int(fraction * 10)
        ImportJob.objects.filter(pk=job.pk).update(phase=phase[:20], progress=min(percent, 99), rows_total=rows)
        if callback:
            callback(phase, fraction, rows)
    return report


def _finish(job: ImportJob, run: ImportRun, *, status: str, message: str = "") -> None:
    previous = job.status
    job.status = status
    job.phase = ""
    job.progress = 100
    job.message = " ".join(m for m in (message, run.notes()) if m)
    job.rows_total = run.rows_total
    job.rows_valid = max(run.rows_valid, 0)
    job.rows_rejected = len({e.row for e in run.errors})
    if run.outcome is not None and (run.written or job.dry_run):
        for key, value in run.outcome.counters().items():
            setattr(job, key, value)
    # The bulk writer finds some errors set-based, after the row checks: report them in file order.
    run.errors.sort(key=lambda e: e.row)
    job.errors = [e.as_dict() for e in run.errors[:ERRORS_KEPT]]
    job.errors_truncated = len(run.errors) > ERRORS_KEPT
    job.preview = run.preview
    job.finished_at = timezone.now()
    job.save()
    event_emit(type="invoice_import.finished", creditor_id=job.creditor_id, payload=_job_payload(job, previous),
               subjects={"import_job": job.pk})


def _source_for(job: ImportJob, items: list[dict] | None) -> RowSource:
    if items is not None:
        return dict_rows(items)
    if not job.file:
        raise ImportFileError(_("The import has no file."))
    columns = job.mapping.columns if job.mapping else None
    return open_rows(Path(job.file.path), filename=job.filename,
                     delimiter=job.mapping.delimiter if job.mapping else "auto",
                     is_header=lambda headers: names_required_fields(headers, columns))


# A worker holds this PostgreSQL session lock on its job from before the claim to the end: a
# job still "running" whose lock is free lost its worker (killed, out of memory, restarted).
JOB_LOCK_SPACE = 0x1E8  # the first key of pg_advisory_lock(int, int): import jobs' own key space
# Without session locks (the SQLite demo database) a job running that long is taken as lost.
STALE_WITHOUT_LOCKS = dt.timedelta(hours=6)


def _job_lock(job_id: int) -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [JOB_LOCK_SPACE, job_id])
        return bool(cursor.fetchone()[0])


def _job_unlock(job_id: int) -> None:
    if connection.vendor == "postgresql" and connection.connection is not None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [JOB_LOCK_SPACE, job_id])


def import_job_run(*, job: ImportJob, items: list[dict] | None = None, engine: str = "auto",
                   progress: Callable[[str, float, int], None] | None = None, collect_outcomes: bool = False,
                   write_return_file: bool = True) -> tuple[ImportJob, ImportRun | None]:
    """Run a pending import. Safe to call twice for one job (the second call does nothing).

    Not atomic on purpose: reading commits its progress as it goes; the writing is one
    transaction of its own (pipeline.run_import), committed together with the job's new status."""
    if not _job_lock(job.pk):  # a live worker is at it
        job.refresh_from_db()
        return job, None
    try:
        claimed = _claim(job)
        if claimed is None:
            job.refresh_from_db()
            return job, None
        return _run_claimed(claimed, items=items, engine=engine, progress=progress,
                            collect_outcomes=collect_outcomes, write_return_file=write_return_file)
    finally:
        _job_unlock(job.pk)


def _worker_gone(job: ImportJob, now: dt.datetime) -> bool:
    if connection.vendor != "postgresql":
        return job.started_at is not None and job.started_at < now - STALE_WITHOUT_LOCKS
    if not _job_lock(job.pk):
        return False
    _job_unlock(job.pk)
    return True


def import_jobs_recover(*, now: dt.datetime | None = None) -> list[ImportJob]:
    """Imports left "running" by a worker that died. Their writing died with the worker (one
    transaction), so nothing of them is in the database. With a file they run again (importing
    is idempotent); an API call's rows died with the call: failed, and the client sends the
    call again."""
    now = now or timezone.now()
    recovered = []
    for job_id in ImportJob.objects.filter(status=ImportJob.Status.RUNNING).order_by("pk").values_list("pk",
                                                                                                      flat=True):
        with transaction.atomic():
            job = ImportJob.objects.select_for_update(skip_locked=True).filter(
                pk=job_id, status=ImportJob.Status.RUNNING).first()
            if job is None or not _worker_gone(job, now):
                continue
            if job.file:
                previous = job.status
                job.status = ImportJob.Status.PENDING
                job.phase = ""
                job.progress = 0
                job.message = _("Its worker stopped during the import (nothing of it was written): it runs again.")
                job.save(update_fields=["status", "phase", "progress", "message"])
                event_emit(type="invoice_import.requeued", creditor_id=job.creditor_id,
                           payload=_job_payload(job, previous), subjects={"import_job": job.pk})
                if job.source != ImportJob.Source.DROP_FOLDER:  # the drop-folder poll runs its own
                    import_job_enqueue(job_id=job.pk)
            else:
                _finish(job, ImportRun(rows_total=job.rows_total), status=ImportJob.Status.FAILED,
                        message=_("Its worker stopped during the import: nothing was written. Send the call "
                                  "again."))
        recovered.append(job)
    return recovered


def import_job_enqueue(*, job_id: int) -> None:
    """Run the job on a worker once the caller's transaction commits (at once outside one)."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task("connectors.tasks.run_import_job", job_id,
                                             q_options={"task_name": f"import-{job_id}"}))


def _reading(job: ImportJob) -> dict[str, Any]:
    """How the job's file is read: its mapping's settings, else the defaults."""
    mapping = job.mapping
    return {"columns": mapping.columns if mapping else None,
            "default_currency": (mapping.default_currency if mapping and mapping.default_currency
                                 else job.creditor.default_currency),
            "date_format": mapping.date_format if mapping else "",
            "decimal_separator": mapping.decimal_separator if mapping else "auto"}


RETURN_FILE_GRACE = dt.timedelta(minutes=2)
# A file that cannot be read again is not tried every minute for ever.
RETURN_FILE_GIVE_UP = dt.timedelta(days=1)


def import_jobs_write_missing_return_files(*, now: dt.datetime | None = None) -> list[ImportJob]:
    """File imports that committed but whose worker died before writing their return file (it
    is written just after the commit): written now, for the rows the import wrote, found again
    from its file. Without this the ERP would never get the pay links of that import."""
    now = now or timezone.now()
    written = []
    candidates = (ImportJob.objects.filter(status__in=[ImportJob.Status.SUCCEEDED, ImportJob.Status.PARTIAL],
                                           dry_run=False, return_file="", rows_valid__gt=0,
                                           finished_at__lt=now - RETURN_FILE_GRACE,
                                           finished_at__gt=now - RETURN_FILE_GIVE_UP)
                  .exclude(file="").order_by("pk").values_list("pk", flat=True))
    for job_id in candidates:
        with transaction.atomic():
            job = ImportJob.objects.select_for_update(skip_locked=True).filter(pk=job_id, return_file="").first()
            if job is None:
                continue
            try:
                refs = valid_refs(_source_for(job, None), **_reading(job),
                                  rejected_rows={error["row"] for error in job.errors})
            except (ImportFileError, OSError) as exc:
                logger.warning("import %s: its return file cannot be written again: %s", job.pk, exc)
                continue
            written.append(import_job_write_return_file(job=job, refs=refs))
    return written


def _run_claimed(job: ImportJob, *, items: list[dict] | None, engine: str,
                 progress: Callable[[str, float, int], None] | None, collect_outcomes: bool,
                 write_return_file: bool) -> tuple[ImportJob, ImportRun | None]:
    report = _progress_writer(job, progress)
    run = ImportRun()
    try:
        source = _source_for(job, items)
        run = run_import(
            creditor=job.creditor, source=source, **_reading(job),
            all_or_nothing=job.mode == ImportJob.Mode.ALL_OR_NOTHING, dry_run=job.dry_run, engine=engine,
            progress=report, collect_outcomes=collect_outcomes, keep_row_refs=items is not None,
            on_written=lambda r: _finish(job, r, status=(ImportJob.Status.PARTIAL if r.errors
                                                          else ImportJob.Status.SUCCEEDED)))
    except ImportFileError as exc:
        with transaction.atomic():
            _finish(job, run, status=ImportJob.Status.FAILED, message=str(exc))
        return job, run
    except Exception as exc:
        # Never leave a job "running" for ever: record the failure (its writing was rolled
        # back), then let the task runner see the error too.
        with transaction.atomic():
            _finish(job, ImportRun(rows_total=run.rows_total), status=ImportJob.Status.FAILED,
                    message=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    if not run.written:
        with transaction.atomic():
            if job.dry_run:
                _finish(job, run, status=ImportJob.Status.PREVIEWED)
            elif run.errors:
                _finish(job, run, status=ImportJob.Status.FAILED,
                        message=_("Nothing was imported: %(count)s row(s) have errors.")
                        % {"count": len({e.row for e in run.errors})})
            else:
                _finish(job, run, status=ImportJob.Status.SUCCEEDED, message=_("The file has no rows."))
    elif write_return_file and items is None:
        import_job_write_return_file(job=job, refs=run.valid_refs)
    return job, run


# --------------------------------------------------------------------------- results


def request_details(*, creditor: Creditor, refs: Iterable[str], batch_size: int = 2000) -> dict[str, dict[str, Any]]:
    """external_ref → what the ERP needs to send its mailing: pay link, short reference and
    transfer details (virtual IBAN when the reconciliation module gave one)."""
    refs = list(refs)
    found: dict[str, dict[str, Any]] = {}
    # With a virtual IBAN range, what the outbox consumer has not allocated yet is allocated
    # now: the ERP's mailing needs the virtual IBAN of every new customer or debt.
    allocate_now = VirtualIBANRange.objects.filter(creditor=creditor, is_active=True).exists()
    for start in range(0, len(refs), batch_size):
        batch = refs[start:start + batch_size]
        requests = list(PaymentRequest.objects.filter(creditor=creditor, invoices__external_ref__in=batch)
                        .select_related("creditor").prefetch_related("invoices").order_by("id"))
        if allocate_now:
            virtual_ibans_ensure_bulk(creditor_id=creditor.pk, payment_requests=requests)
        beneficiaries = transfer_beneficiaries(payment_requests=requests)
        for request in requests:
            for invoice in request.invoices.all():
                if invoice.external_ref not in batch:
                    continue
                current = found.get(invoice.external_ref)
                # The request made for this invoice (same reference) wins over a grouped one.
                if current and current["reference"] == invoice.external_ref != request.reference:
                    continue
                beneficiary = beneficiaries[request.pk]
                found[invoice.external_ref] = {
                    "external_ref": invoice.external_ref,
                    "reference": request.reference,
                    "payment_request_id": request.pk,
                    "pay_url": request.pay_url,
                    "short_reference": request.short_reference,
                    "virtual_iban": beneficiary.iban if beneficiary.virtual else "",
                    "iban": beneficiary.iban,
                    "bic": beneficiary.bic,
                    "transfer_reference": beneficiary.reference,
                    "qr_code_url": f"{settings.PUBLIC_BASE_URL}/pay/{request.token}/qr.png",
                }
    return found


def import_job_write_return_file(*, job: ImportJob, refs: dict[str, int]) -> ImportJob:
    """The return file (CSV) of a committed import, in the file's row order."""
    details = request_details(creditor=job.creditor, refs=refs)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(RETURN_COLUMNS)
    for ref in sorted(refs, key=refs.get):
        if ref in details:
            writer.writerow([details[ref][c] for c in RETURN_COLUMNS])
    name = f"return-{job.pk}-{Path(job.filename or 'import').stem}.csv"
    job.return_file.save(name, ContentFile(buffer.getvalue().encode("utf-8-sig")), save=False)
    ImportJob.objects.filter(pk=job.pk).update(return_file=job.return_file.name)
    return job


def errors_csv(errors: Iterable[dict[str, Any] | RowError]) -> bytes:
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["row", "column", "message"])
    for error in errors:
        item = error.as_dict() if isinstance(error, RowError) else error
        writer.writerow([item["row"], item["column"], item["message"]])
    return buffer.getvalue().encode("utf-8-sig")


def api_import(*, creditor: Creditor, items: list[dict[str, Any]], mode: str = ImportJob.Mode.ALL_OR_NOTHING,
               dry_run: bool = False) -> tuple[ImportJob, list[dict[str, Any]]]:
    """The bulk API: up to API_MAX_ROWS invoices, one result per row in the same order."""
    if not isinstance(items, list) or not items:
        raise ValidationFailed(_("Send a non-empty list of invoices."), field="invoices")
    if len(items) > API_MAX_ROWS:
        raise ValidationFailed(_("At most %(max)s invoices per call.") % {"max": API_MAX_ROWS}, field="invoices")
    job = import_job_create(creditor=creditor, source=ImportJob.Source.API, mode=mode, dry_run=dry_run,
                            filename=f"api-{len(items)}-rows")
    job, run = import_job_run(job=job, items=items, collect_outcomes=True)
    errors_by_row: dict[int, list[dict[str, Any]]] = {}
    for error in run.errors:
        errors_by_row.setdefault(error.row, []).append({"field": error.column, "message": error.message})
    details = request_details(creditor=creditor, refs=run.valid_refs) if run.written else {}
    outcomes = run.outcome.outcomes if run.outcome else {}
    results = []
    for number in range(1, len(items) + 1):
        ref = run.row_refs.get(number, "")
        if number in errors_by_row:
            results.append({"row": number, "external_ref": ref, "status": "rejected",
                            "errors": errors_by_row[number]})
        elif not run.written:
            results.append({"row": number, "external_ref": ref,
                            "status": "valid" if job.dry_run else "not_imported",
                            **({"outcome": outcomes[ref]} if ref in outcomes else {}), "errors": []})
        else:
            info = details.get(ref, {})
            results.append({"row": number, "external_ref": ref, "status": outcomes.get(ref, "unchanged"),
                            "errors": [], **{k: info.get(k, "") for k in RETURN_COLUMNS if k != "external_ref"},
                            "payment_request_id": info.get("payment_request_id")})
    return job, results


# --------------------------------------------------------------------------- drop folder


def import_dir() -> Path:
    return Path(settings.CONNECTORS_IMPORT_DIR)


def drop_folder_scan(*, now=None) -> list[ImportJob]:
    """Turn every file waiting in IMPORT_DIR/<mapping name>/ into a pending import job.

    The file is moved (same filesystem: atomic) into IMPORT_DIR/<mapping>/processing/ and
    locked before its job is created, so two scanners never take the same file; ERPs should
    write a file under a temporary name (a leading dot or .tmp/.part suffix) and rename it when
    complete. A file that a dead scanner left in processing/ becomes a job on the next scan,
    unless the scanner died after creating its job (the job's file carries the claimed name):
    then it is only moved on, and its pending job runs as usual."""
    jobs = []
    base = import_dir()
    base.mkdir(parents=True, exist_ok=True)
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        mapping = ColumnMapping.objects.filter(name=folder.name).select_related("creditor").first()
        if mapping is None:
            continue
        done = folder / "done"
        done.mkdir(exist_ok=True)
        for claimed, handle, name, left_over in take_all(folder, folder / "processing"):
            with handle:
                # (the storage may add a suffix to a name it already holds: its stem is unique)
                job = ImportJob.objects.filter(source=ImportJob.Source.DROP_FOLDER,
                                               file__contains=f"/{Path(claimed.name).stem}").first() \
                    if left_over else None
                if job is None:
                    job = import_job_create(creditor=mapping.creditor, source=ImportJob.Source.DROP_FOLDER,
                                            filename=name, content=File(handle, name=name), mapping=mapping,
                                            stored_name=claimed.name)
                    jobs.append(job)
                shutil.move(str(claimed), done / claimed.name)
    return jobs

