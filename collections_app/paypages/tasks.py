"""django-q2 entry points of the pay pages (declared in config/schedules.py)."""
from __future__ import annotations

from collections_app.paypages.services import card_checkouts_recover


def recover_card_checkouts() -> dict[str, int]:
    return card_checkouts_recover()
