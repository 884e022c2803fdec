"""Demo data of the ERP connectors (idempotent): a saved column mapping for a French ERP export,
a status-file cursor, and the example file imported once."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from collections_app.models import Creditor
from connectors.exports import export_cursor_create
from connectors.models import ColumnMapping, ExportCursor, ImportJob

EXAMPLE = Path(settings.BASE_DIR) / "docs" / "examples" / "invoices.csv"


def seed() -> dict[str, int]:
    creditor = Creditor.objects.order_by("pk").first()
    if creditor is None:
        return {"mappings": 0}
    mapping, created = ColumnMapping.objects.get_or_create(
        name="erp-demo", defaults={"creditor": creditor, "decimal_separator": ",", "date_format": "%d/%m/%Y",
                                   "delimiter": ";", "columns": {"Libellé": "description"}})
    if not ExportCursor.objects.filter(name="erp-demo-status").exists():
        export_cursor_create(name="erp-demo-status", creditor=creditor, format="csv")
    imported = 0
    if EXAMPLE.is_file() and not ImportJob.objects.filter(mapping=mapping, filename=EXAMPLE.name).exists():
        from connectors.services import import_job_create, import_job_run

        job = import_job_create(creditor=creditor, source=ImportJob.Source.COMMAND, filename=EXAMPLE.name,
                                content=EXAMPLE.read_bytes(), mapping=mapping)
        job, _run = import_job_run(job=job)
        imported = job.invoices_created
    return {"mappings": int(created), "invoices_imported": imported}
