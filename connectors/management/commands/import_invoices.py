"""`manage.py import_invoices FILE [--mapping NAME] [--json]`: import a CSV/XLSX file of invoices."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import CommandError

from collections_app.models import Creditor
from connectors.models import ColumnMapping, ImportJob
from connectors.services import import_job_create, import_job_run
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = "Import invoices (CSV or XLSX): customers, invoices and payment requests with their pay links."

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--mapping", help="name of a saved column mapping (it also gives the creditor)")
        parser.add_argument("--creditor", type=int, help="creditor id (needed without --mapping when there are "
                                                         "several creditors)")
        parser.add_argument("--mode", choices=ImportJob.Mode.values, default=ImportJob.Mode.ALL_OR_NOTHING)
        parser.add_argument("--dry-run", action="store_true", help="validate and count, write nothing")
        parser.add_argument("--engine", choices=["auto", "postgres", "orm"], default="auto",
                            help="auto: set-based on PostgreSQL, through the services elsewhere")

    def run(self, **options: Any) -> tuple[str, dict[str, Any]]:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        mapping = None
        if options.get("mapping"):
            mapping = ColumnMapping.objects.select_related("creditor").filter(name=options["mapping"]).first()
            if mapping is None:
                raise CommandError(f"no column mapping named {options['mapping']!r}")
        creditor = mapping.creditor if mapping else None
        if options.get("creditor"):
            creditor = Creditor.objects.filter(pk=options["creditor"]).first()
            if creditor is None:
                raise CommandError(f"no creditor #{options['creditor']}")
        if creditor is None:
            creditors = list(Creditor.objects.all()[:2])
            if len(creditors) != 1:
                raise CommandError("say which creditor: --creditor ID or --mapping NAME")
            creditor = creditors[0]
        with open(path, "rb") as handle:
            job = import_job_create(creditor=creditor, source=ImportJob.Source.COMMAND, filename=path.name,
                                    content=File(handle, name=path.name), mapping=mapping, mode=options["mode"],
                                    dry_run=options["dry_run"])
        bar = None
        if self.progress_enabled(options):
            from tqdm import tqdm

            bar = tqdm(total=100, unit="%", desc="reading", leave=False)

        def progress(phase: str, fraction: float, rows: int) -> None:
            if bar is None:
                return
            percent = int(fraction * 90) if phase == "reading" else 90 + int(fraction * 10)
            bar.set_description(f"{phase} ({rows} rows)")
            bar.update(max(percent - bar.n, 0))

        try:
            job, _run = import_job_run(job=job, engine=options["engine"], progress=progress)
        finally:
            if bar is not None:
                bar.close()
        job.refresh_from_db()
        data = {
            "import_job_id": job.pk, "status": job.status, "rows_total": job.rows_total,
            "rows_valid": job.rows_valid, "rows_rejected": job.rows_rejected,
            "customers_created": job.customers_created, "customers_updated": job.customers_updated,
            "invoices_created": job.invoices_created, "invoices_updated": job.invoices_updated,
            "invoices_unchanged": job.invoices_unchanged, "payment_requests_created": job.payment_requests_created,
            "return_file": job.return_file.path if job.return_file else None,
            "errors": job.errors[:100], "message": job.message,
        }
        lines = [f"Import #{job.pk} of {path.name}: {job.get_status_display()}",
                 f"  rows: {job.rows_total} read, {job.rows_valid} valid, {job.rows_rejected} rejected",
                 f"  customers: {job.customers_created} created, {job.customers_updated} updated",
                 f"  invoices: {job.invoices_created} created, {job.invoices_updated} updated, "
                 f"{job.invoices_unchanged} unchanged; payment requests: {job.payment_requests_created} created"]
        if job.return_file:
            lines.append(f"  return file: {job.return_file.path}")
        for error in job.errors[:20]:
            lines.append(f"  row {error['row']}, {error['column']}: {error['message']}")
        if len(job.errors) > 20:
            lines.append(f"  … {len(job.errors) - 20} more errors (admin: error report CSV)")
        if job.message:
            lines.append(f"  {job.message}")
        if job.status == ImportJob.Status.FAILED:
            if options.get("json"):
                self.stdout.write("\n".join(lines))
                import json

                from django.core.serializers.json import DjangoJSONEncoder

                self.stdout.write(json.dumps({"ok": False, **data}, cls=DjangoJSONEncoder))
                raise SystemExit(1)
            raise CommandError("\n".join(lines))
        return "\n".join(lines), data
