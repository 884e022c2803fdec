"""Writing events into the outbox. Called by every domain service, inside its transaction."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from notifications import catalog
from notifications.dispatch import schedule_dispatch_on_commit
from notifications.models import Event, EventSubject

logger = logging.getLogger(__name__)


class UnknownEventType(ValueError):
    pass


class OutboxOutsideTransaction(RuntimeError):
    pass


def _jsonable(payload: Mapping[str, Any]) -> dict[str, Any]:
    # Round-trip through Django's encoder: Decimals become strings (never floats),
    # dates and datetimes ISO 8601, UUIDs strings.
    import json

    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def event_emit(
    *,
    type: str,
    payload: Mapping[str, Any],
    creditor_id: int | None = None,
    subjects: Mapping[str, int | Iterable[int] | None] | None = None,
) -> Event:
    """Append an event to the outbox, in the caller's transaction.

    Refuses to run outside a transaction: an event written on its own could describe a
    change that is later rolled back.
    """
    if not catalog.is_known(type):
        raise UnknownEventType(f"{type!r} is not in the event catalog")
    if not connection.in_atomic_block:
        raise OutboxOutsideTransaction("event_emit must be called inside transaction.atomic()")
    event = Event.objects.create(
        type=type, occurred_at=timezone.now(), creditor_id=creditor_id, payload=_jsonable(payload)
    )
    rows = []
    for kind, ids in (subjects or {}).items():
        if ids is None:
            continue
        id_list = [ids] if isinstance(ids, int) else list(ids)
        rows.extend(EventSubject(event=event, kind=kind, object_id=i) for i in set(id_list))
    if rows:
        EventSubject.objects.bulk_create(rows)
    schedule_dispatch_on_commit()
    return event
