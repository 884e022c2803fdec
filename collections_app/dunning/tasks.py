"""django-q2 entry point of dunning (declared in config/schedules.py)."""
from __future__ import annotations

from typing import Any


def run_dunning() -> dict[str, Any]:
    """Every 15 minutes: send windows open and close during the day, and a run only sends what is
    due and inside its window. Safe to run concurrently (claim rows, SKIP LOCKED)."""
    from collections_app.dunning.services import dunning_run, reminders_recover_stuck

    recovered = reminders_recover_stuck()
    result = dunning_run()
    return {**result["counts"], "recovered_unknown": recovered}
