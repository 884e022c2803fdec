"""`manage.py run_dunning [--date YYYY-MM-DD] [--at ISO-DATETIME] [--dry-run] [--json]`."""
from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from collections_app.dunning.services import dunning_run, reminders_recover_stuck
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = ("Send the reminder steps due today (only inside each scenario's send window), skip what is "
            "paid, escalate after the last step. Safe to run concurrently and again after a crash.")

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("--date", help="run as of this business date (time travel; default: today)")
        parser.add_argument("--at", help="the instant used for send windows, ISO 8601 (default: now, or the "
                                         "--date at the current time of day)")
        parser.add_argument("--dry-run", action="store_true", help="list what would go out, write nothing")
        parser.add_argument("--creditor", type=int, help="only this creditor's invoices (id)")

    def run(self, **options: Any) -> tuple[str, dict[str, Any]]:
        now = timezone.now()
        today = None
        if options.get("date"):
            today = parse_date(options["date"])
            if today is None:
                raise CommandError(f"--date: not a date: {options['date']!r}")
            now = dt.datetime.combine(today, now.timetz())
        if options.get("at"):
            at = parse_datetime(options["at"])
            if at is None:
                raise CommandError(f"--at: not a date-time: {options['at']!r}")
            now = at if timezone.is_aware(at) else timezone.make_aware(at, dt.timezone.utc)
            today = today or timezone.localdate(now)
        recovered = 0 if options["dry_run"] else reminders_recover_stuck()
        result = dunning_run(today=today, now=now, dry_run=options["dry_run"], creditor_id=options.get("creditor"))
        result["recovered_unknown"] = recovered
        counts = result["counts"]
        lines = [f"Dunning run for {result['date']}{' (dry run: nothing written)' if options['dry_run'] else ''}"]
        lines += [f"  {key}: {value}" for key, value in counts.items()] or ["  nothing to do"]
        if recovered:
            lines.append(f"  interrupted sends marked unknown: {recovered}")
        for item in result.get("items", []):
            if item["action"] == "send":
                lines.append(f"  would send step J{item['step_offset_days']:+d} ({item['channel']}) for "
                             f"{item['invoice']} · {item['customer']} · {item['amount_due']} {item['currency']}"
                             + (f" (skipping {len(item['skipped_steps'])} missed step(s))"
                                if item["skipped_steps"] else ""))
            else:
                lines.append(f"  would escalate ({item['reason']}) {item['invoice']} · {item['customer']}")
        return "\n".join(lines), result
