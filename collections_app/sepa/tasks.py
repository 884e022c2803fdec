"""django-q2 entry points of the SEPA collection (declared in config/schedules.py)."""
from __future__ import annotations

from collections_app.sepa.services import direct_debits_prenotify, sepa_export, sepa_files_write_pending


def sepa_export_daily() -> dict:
    return sepa_export().as_dict()


def direct_debits_prenotify_daily() -> int:
    return direct_debits_prenotify()


def write_pending_files() -> int:
    return len(sepa_files_write_pending())
