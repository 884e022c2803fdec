"""`manage.py accounting_export --creditor ID --start YYYY-MM-DD --end YYYY-MM-DD [--format fec|journal]`."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from collections_app.models import Creditor
from connectors.accounting import accounting_export_build
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = "Write the accounting export (FEC or journal lines CSV) of a period for one creditor."

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("--creditor", type=int, required=True)
        parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--format", choices=["fec", "journal"], default="fec")
        parser.add_argument("--output-dir", type=Path, default=Path("."))

    def run(self, **options: Any) -> tuple[str, dict[str, Any]]:
        creditor = Creditor.objects.filter(pk=options["creditor"]).first()
        if creditor is None:
            raise CommandError(f"no creditor #{options['creditor']}")
        name, body, lines = accounting_export_build(creditor=creditor, start=options["start"], end=options["end"],
                                                    format=options["format"])
        path = options["output_dir"] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return (f"{options['format'].upper()} of {creditor} {options['start']} → {options['end']}: {lines} lines "
                f"written to {path}", {"path": str(path), "lines": lines, "format": options["format"]})
