"""django-q2 entry points of the notifications app. Tasks take ids, never objects."""
from notifications.dispatch import dispatch_pending


def dispatch_events() -> int:
    return dispatch_pending()
