import datetime as dt

from django.utils.translation import gettext as _

from collections_app.retries.services import card_charges_run
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = _("Charge the saved cards of the card instalments that are due (first attempts and retries).")

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("--date", type=dt.date.fromisoformat, help="business date of the run (YYYY-MM-DD)")

    def run(self, **options):
        result = card_charges_run(today=options.get("date"))
        summary = (_("%(n)d card charge(s): %(ok)d succeeded, %(ko)d failed, %(again)d retries scheduled.")
                   % {"n": result.submitted, "ok": result.succeeded, "ko": result.failed,
                      "again": result.retries_scheduled})
        if result.errors:
            raise RuntimeError(summary + "\n" + "\n".join(result.errors))
        return summary, result.as_dict()
