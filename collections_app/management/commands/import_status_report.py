import datetime as dt
from pathlib import Path

from django.utils.translation import gettext as _

from collections_app.sepa.services import status_report_import
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = _("Import a pain.002 payment status report (rejects of our direct debits). All or nothing.")

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("file")
        parser.add_argument("--date", type=dt.date.fromisoformat, help="business date of the import (YYYY-MM-DD)")

    def run(self, **options):
        path = Path(options["file"])
        result = status_report_import(content=path.read_bytes(), filename=path.name, today=options.get("date"))
        if result.errors:
            raise RuntimeError(_("%(file)s not imported, nothing applied:") % {"file": path.name} + "\n"
                               + "\n".join(f"  {e}" for e in result.errors))
        if result.already_imported:
            return _("%(id)s was already imported; nothing to do.") % {"id": result.message_id}, result.as_dict()
        lines = [_("%(n)d rejected transaction(s), %(a)d accepted.")
                 % {"n": len(result.rejected), "a": result.accepted}]
        lines += [f"  {r['end_to_end_id']}: {r['reason_code']} {r['reason']}"
                  + (" → retry" if r.get("will_retry") else "") for r in result.rejected]
        return "\n".join(lines), result.as_dict()
