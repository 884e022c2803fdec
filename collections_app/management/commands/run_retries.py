import datetime as dt

from django.utils.translation import gettext as _

from collections_app.retries.services import retries_run
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = _("Run the collection retries that are due (cards charged, direct debits put in files).")

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("--date", type=dt.date.fromisoformat, help="business date of the run (YYYY-MM-DD)")

    def run(self, **options):
        result = retries_run(today=options.get("date"))
        summary = (_("%(n)d retry attempt(s): %(ok)d succeeded, %(ko)d failed, %(again)d rescheduled, %(f)d file(s).")
                   % {"n": result.submitted, "ok": result.succeeded, "ko": result.failed,
                      "again": result.retries_scheduled, "f": len(result.files)})
        if result.errors:
            raise RuntimeError(summary + "\n" + "\n".join(result.errors))
        return summary, result.as_dict()
