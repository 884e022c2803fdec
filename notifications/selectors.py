from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import Event


def event_timeline(*, kind: str, object_id: int, limit: int = 200) -> QuerySet[Event]:
    """Events about one object, newest first: the timeline shown in the admin."""
    return (Event.objects.filter(subjects__kind=kind, subjects__object_id=object_id)
            .order_by("-id")[:limit])


def event_feed(*, since_id: int | None = None, types: list[str] | None = None,
               creditor_id: int | None = None) -> QuerySet[Event]:
    qs = Event.objects.order_by("id")
    if since_id is not None:
        qs = qs.filter(id__gt=since_id)
    if types:
        qs = qs.filter(type__in=types)
    if creditor_id is not None:
        qs = qs.filter(creditor_id=creditor_id)
    return qs
