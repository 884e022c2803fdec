"""django-q2 entry points of card charges and retries (declared in config/schedules.py)."""
from __future__ import annotations

from collections_app.retries.services import card_charges_run, cards_expiring_notify


def charge_cards_daily() -> dict:
    return card_charges_run().as_dict()


def run_retries_daily() -> dict:
    from collections_app.retries.services import retries_run

    return retries_run().as_dict()


def cards_expiring_daily() -> int:
    return cards_expiring_notify()
