"""django-q2 entry points of the notifications app. Tasks take ids, never objects."""
from notifications.dispatch import dispatch_pending


def dispatch_events() -> int:
    return dispatch_pending()


def send_deliveries() -> dict[str, int]:
    """Every minute and after each dispatch: resolve crashed sends, then send what is due.
    Safe to run concurrently: rows are claimed with SKIP LOCKED."""
    from notifications.sender import deliveries_recover_stuck, deliveries_send_due

    recovered = deliveries_recover_stuck()
    return {**deliveries_send_due(time_budget=50), **{f"stuck_{k}": v for k, v in recovered.items()}}
