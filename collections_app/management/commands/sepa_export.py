import datetime as dt

from django.utils.translation import gettext as _

from collections_app.sepa.services import sepa_export
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = _("Collection run: due SEPA instalments into pain.008 files (validated, stored, dropped for the bank).")

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("--date", type=dt.date.fromisoformat, help="business date of the run (YYYY-MM-DD)")
        parser.add_argument("--creditor", type=int, action="append", help="only this creditor id (repeatable)")

    def run(self, **options):
        result = sepa_export(today=options.get("date"), creditor_ids=options.get("creditor"))
        lines = [_("%(n)d direct debit(s) in %(f)d file(s).") % {"n": result.submitted, "f": len(result.files)}]
        lines += [f"  {f['file_name']}: {f['transactions']} × {f['sequence_type']} on {f['collection_date']}, "
                  f"{f['control_sum']} EUR" for f in result.files]
        lines += [f"  ERROR {e}" for e in result.errors]
        if result.errors:
            raise RuntimeError("\n".join(lines))
        return "\n".join(lines), result.as_dict()
