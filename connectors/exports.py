"""Status files for ERPs: the changes of invoices, payment requests, payments and refunds,
written as CSV or JSON into CONNECTORS_EXPORT_DIR/<cursor name>/.

Every committed outbox event of those kinds is queued once per export cursor by an outbox
consumer (PendingStatusEvent); a status file takes what is queued, in event-id order.

Exactly once, even when the worker is killed: the file is written under a hidden temporary
name (ERPs skip dot-files) and fsynced, then the transaction that records its ExportJob and
dequeues its events commits, and only then is it renamed to its final name (atomic on one
filesystem). A crash before the commit leaves a hidden file and the events still queued (the
next run deletes the file and writes them again); a crash after it leaves a hidden file whose
job exists, which the next run of that cursor renames (`_status_files_finish`). Renaming after
the commit, never before, is what keeps a crash from publishing the same events twice.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from connectors.models import ExportCursor, ExportJob, PendingStatusEvent
from notifications.models import Event
from notifications.services import event_emit

HANDLER_NAME = "connectors.status_files"
STATUS_PREFIXES = ("invoice.", "payment_request.", "payment.", "refund.", "installment.", "instalment_plan.")
STATUS_COLUMNS = ["event_id", "occurred_at", "type", "object", "object_id", "external_ref", "status",
                  "previous_status", "amount", "amount_paid", "amount_due", "currency", "customer_external_ref",
                  "payment_request_reference", "method", "reason_code"]
MAX_EVENTS_PER_FILE = 100_000


def is_status_event(event_type: str) -> bool:
    return event_type.startswith(STATUS_PREFIXES)


def status_event_queue(event: Event) -> None:
    """Outbox consumer: queue the event for every cursor that wants it."""
    if not is_status_event(event.type):
        return
    cursors = ExportCursor.objects.filter(start_after_event_id__lt=event.pk)
    cursors = [c for c in cursors if c.creditor_id in (None, event.creditor_id)]
    PendingStatusEvent.objects.bulk_create([PendingStatusEvent(cursor=c, event=event) for c in cursors],
                                           ignore_conflicts=True)


def _line(event: Event) -> dict[str, Any]:
    p = event.payload
    kind = event.type.split(".")[0]
    object_id = {"invoice": p.get("invoice_id"), "payment_request": p.get("payment_request_id"),
                 "payment": p.get("payment_id"), "refund": p.get("refund_id"), "installment": p.get("installment_id"),
                 "instalment_plan": p.get("instalment_plan_id")}.get(kind)
    external_ref = p.get("invoice_external_ref") or p.get("reference") or p.get("payment_request_reference") or ""
    return {
        "event_id": event.pk, "occurred_at": event.occurred_at, "type": event.type, "object": kind,
        "object_id": object_id, "external_ref": external_ref, "status": p.get("status", ""),
        "previous_status": p.get("previous_status") or "",
        "amount": p.get("amount_total") or p.get("amount") or p.get("total_amount") or "",
        "amount_paid": p.get("amount_paid", ""), "amount_due": p.get("amount_due", ""),
        "currency": p.get("currency", ""), "customer_external_ref": p.get("customer_external_ref", ""),
        "payment_request_reference": p.get("payment_request_reference") or "", "method": p.get("method", ""),
        "reason_code": p.get("reason_code", ""),
    }


def _render(events: list[Event], fmt: str) -> bytes:
    if fmt == "json":
        data = [{**_line(e), "payload": e.payload} for e in events]
        return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=1).encode("utf-8")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATUS_COLUMNS)
    writer.writeheader()
    for event in events:
        line = _line(event)
        line["occurred_at"] = event.occurred_at.isoformat()
        writer.writerow(line)
    return out.getvalue().encode("utf-8")


def _hidden(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _write_hidden(path: Path, data: bytes) -> None:
    """Write the file under its hidden name, durably; `_publish` gives it its real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(_hidden(path), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _publish(path: Path) -> None:
    """Rename a committed status file to its final name; another worker may have done it already."""
    try:
        os.replace(_hidden(path), path)
    except FileNotFoundError:
        pass


def _status_files_finish(cursor: ExportCursor) -> None:
    """Hidden files left in the cursor's folder by a killed worker (the caller holds the cursor's
    lock, so no other worker is writing one): published when their job committed, else deleted
    (their events are still queued and go into the next file)."""
    folder = export_dir() / cursor.name
    if not folder.is_dir():
        return
    for hidden in folder.glob(".status-*.tmp"):
        final = hidden.with_name(hidden.name[1:-len(".tmp")])
        if ExportJob.objects.filter(cursor=cursor, path=str(final)).exists():
            _publish(final)
        else:
            hidden.unlink(missing_ok=True)


def export_dir() -> Path:
    return Path(settings.CONNECTORS_EXPORT_DIR)


def status_file_write(*, cursor: ExportCursor) -> ExportJob | None:
    """Write the next status file of one cursor; None when nothing is waiting or another
    worker holds the cursor right now. Call it outside a transaction: the file gets its final
    name once its job is committed (see the module docstring)."""
    job = _status_file_stage(cursor=cursor)
    if job is not None:
        _publish(Path(job.path))
    return job


@transaction.atomic
def _status_file_stage(*, cursor: ExportCursor) -> ExportJob | None:
    cursor = ExportCursor.objects.select_for_update(skip_locked=True).filter(pk=cursor.pk).first()
    if cursor is None:
        return None
    _status_files_finish(cursor)
    pending = list(PendingStatusEvent.objects.filter(cursor=cursor).select_related("event")
                   .order_by("event_id")[:MAX_EVENTS_PER_FILE])
    if not pending:
        return None
    events = [p.event for p in pending]
    first, last = events[0].pk, events[-1].pk
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    path = export_dir() / cursor.name / f"status-{stamp}-{first}-{last}.{cursor.format}"
    _write_hidden(path, _render(events, cursor.format))
    PendingStatusEvent.objects.filter(pk__in=[p.pk for p in pending]).delete()
    cursor.last_event_id = max(cursor.last_event_id, last)
    cursor.save(update_fields=["last_event_id", "updated_at"])
    job = ExportJob.objects.create(kind=ExportJob.Kind.STATUS, cursor=cursor, creditor_id=cursor.creditor_id,
                                   path=str(path), from_event_id=first, to_event_id=last, rows=len(events))
    event_emit(type="status_file.written", creditor_id=cursor.creditor_id,
               payload={"export_job_id": job.pk, "cursor": cursor.name, "path": str(path), "format": cursor.format,
                        "from_event_id": first, "to_event_id": last, "rows": len(events)},
               subjects={"export_job": job.pk})
    return job


def status_files_write_all() -> list[ExportJob]:
    jobs = []
    for cursor in ExportCursor.objects.order_by("pk"):
        while (job := status_file_write(cursor=cursor)) is not None:
            jobs.append(job)
    return jobs


@transaction.atomic
def export_cursor_create(*, name: str, creditor=None, format: str = "csv") -> ExportCursor:
    """A new cursor starts with the events still to come (the API feed has the history)."""
    last = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return ExportCursor.objects.create(name=name, creditor=creditor, format=format, start_after_event_id=last,
                                       last_event_id=last)
