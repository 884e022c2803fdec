"""Every django-q2 schedule of the platform, declared once. `manage.py setup_schedules` applies
this list idempotently: schedules are matched by name, created or updated, and our own
schedules that are no longer listed are removed."""
from __future__ import annotations

from django.db import transaction
from django_q.models import Schedule

PREFIX = "encaisse:"

SCHEDULES: list[dict] = [
    {"name": "dispatch-events", "func": "notifications.tasks.dispatch_events",
     "schedule_type": Schedule.MINUTES, "minutes": 1},
    # issue 7: notifications and webhooks (also enqueued right after each dispatch that wrote deliveries)
    {"name": "send-deliveries", "func": "notifications.tasks.send_deliveries",
     "schedule_type": Schedule.MINUTES, "minutes": 1},
    # issue 3: card checkouts left half done by a dead worker or an abandoned 3-D Secure page
    {"name": "recover-card-checkouts", "func": "collections_app.paypages.tasks.recover_card_checkouts",
     "schedule_type": Schedule.MINUTES, "minutes": 5},
    # issue 5: recurring payments schedule their next instalments ahead of the collection runs
    {"name": "extend-recurring-plans", "func": "collections_app.tasks.extend_recurring_plans",
     "schedule_type": Schedule.DAILY},
    {"name": "expire-payment-requests", "func": "collections_app.tasks.expire_payment_requests",
     "schedule_type": Schedule.MINUTES, "minutes": 15},
    # issue 4: bank statements dropped in DROP_DIR/statements
    {"name": "import-statement-drop-folder", "func": "reconciliation.tasks.import_drop_folder",
     "schedule_type": Schedule.MINUTES, "minutes": 5},
    # ...and transactions stored by an import whose worker died before matching them
    {"name": "match-new-transactions", "func": "reconciliation.tasks.match_new_transactions",
     "schedule_type": Schedule.MINUTES, "minutes": 5},
    # issue 6: reminders (windows open and close during the day; each run sends what is due and in window)
    {"name": "run-dunning", "func": "collections_app.dunning.tasks.run_dunning",
     "schedule_type": Schedule.MINUTES, "minutes": 15},
    {"name": "purge-idempotency-keys", "func": "collections_app.tasks.purge_idempotency_keys",
     "schedule_type": Schedule.HOURLY},
    # issue 8: ERP connectors
    {"name": "poll-invoice-drop-folder", "func": "connectors.tasks.poll_drop_folder",
     "schedule_type": Schedule.MINUTES, "minutes": 1},
    {"name": "write-status-files", "func": "connectors.tasks.write_status_files",
     "schedule_type": Schedule.MINUTES, "minutes": 15},
    # issue 5: SEPA collection, card charges, retries, pre-notification and card expiry watch (all daily,
    # safe to overlap: attempts are claimed with SKIP LOCKED under unique constraints)
    {"name": "sepa-export", "func": "collections_app.sepa.tasks.sepa_export_daily",
     "schedule_type": Schedule.DAILY},
    # files a killed run recorded but did not write leave within minutes, not the next day
    {"name": "write-sepa-files", "func": "collections_app.sepa.tasks.write_pending_files",
     "schedule_type": Schedule.MINUTES, "minutes": 5},
    {"name": "charge-card-instalments", "func": "collections_app.retries.tasks.charge_cards_daily",
     "schedule_type": Schedule.DAILY},
    {"name": "run-retries", "func": "collections_app.retries.tasks.run_retries_daily",
     "schedule_type": Schedule.DAILY},
    {"name": "direct-debit-prenotification", "func": "collections_app.sepa.tasks.direct_debits_prenotify_daily",
     "schedule_type": Schedule.DAILY},
    {"name": "card-expiry-watch", "func": "collections_app.retries.tasks.cards_expiring_daily",
     "schedule_type": Schedule.DAILY},
]


@transaction.atomic
def setup_schedules() -> dict[str, list[str]]:
    result: dict[str, list[str]] = {"created": [], "updated": [], "removed": [], "unchanged": []}
    wanted = {PREFIX + item["name"]: item for item in SCHEDULES}
    for name, item in wanted.items():
        fields = {k: v for k, v in item.items() if k != "name"}
        fields.setdefault("repeats", -1)
        existing = Schedule.objects.select_for_update().filter(name=name).first()
        if existing is None:
            Schedule.objects.create(name=name, **fields)
            result["created"].append(name)
            continue
        changed = [k for k, v in fields.items() if getattr(existing, k) != v]
        if changed:
            for k in changed:
                setattr(existing, k, fields[k])
            existing.save()
            result["updated"].append(name)
        else:
            result["unchanged"].append(name)
    stale = Schedule.objects.filter(name__startswith=PREFIX).exclude(name__in=list(wanted))
    result["removed"] = list(stale.values_list("name", flat=True))
    stale.delete()
    return result
