"""The outbox dispatcher: hands committed events to the registered consumers.

At-least-once: an event stays pending until every consumer has handled it. Exactly-once
per (consumer, event): each consumer runs in a savepoint together with the insertion of
its EventHandlerRun row, so a consumer whose work committed is never run again, even
when two dispatchers run at once (rows are claimed with SKIP LOCKED) or one crashes.

Consumers must do their side effects through rows written in that same savepoint (for
example a Delivery row that a sender job picks up), never by calling the outside world
directly: the outside world cannot be rolled back.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from notifications.models import Event, EventHandlerRun

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Handler:
    name: str
    func: Callable[[Event], None]
    event_types: frozenset[str] | None  # None: every event

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types


_HANDLERS: dict[str, Handler] = {}


def register_handler(name: str, func: Callable[[Event], None], event_types: set[str] | None = None) -> None:
    """Register a consumer. Called from AppConfig.ready(); the name is the dedup key, keep it stable."""
    _HANDLERS[name] = Handler(name=name, func=func,
                              event_types=frozenset(event_types) if event_types else None)


def unregister_handler(name: str) -> None:
    _HANDLERS.pop(name, None)


def handlers() -> list[Handler]:
    return list(_HANDLERS.values())


def dispatch_pending(*, batch_size: int = 200, max_batches: int | None = None) -> int:
    """Dispatch pending events in id order; returns how many events were completed."""
    done = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with transaction.atomic():
            events = list(
                Event.objects.select_for_update(skip_locked=True)
                .filter(dispatched_at__isnull=True, dispatch_attempts__lt=MAX_ATTEMPTS)
                .order_by("id")[:batch_size]
            )
            if not events:
                break
            for event in events:
                if _dispatch_one(event):
                    done += 1
        if len(events) < batch_size:
            break
    return done


def _dispatch_one(event: Event) -> bool:
    already = set(EventHandlerRun.objects.filter(event=event).values_list("handler", flat=True))
    errors: list[str] = []
    for handler in handlers():
        if not handler.wants(event.type) or handler.name in already:
            continue
        try:
            with transaction.atomic():
                handler.func(event)
                EventHandlerRun.objects.create(event=event, handler=handler.name)
        except Exception as exc:  # a consumer's bug must not stop the others
            logger.exception("event handler %s failed on event %s", handler.name, event.pk)
            errors.append(f"{handler.name}: {exc!r}")
    if errors:
        event.dispatch_attempts += 1
        event.last_error = "\n".join(errors)[:4000]
        event.save(update_fields=["dispatch_attempts", "last_error"])
        return False
    event.dispatched_at = timezone.now()
    event.save(update_fields=["dispatched_at"])
    return True


def schedule_dispatch() -> None:
    """Ask the django-q2 cluster to dispatch soon. Safe to call often: dispatch is idempotent."""
    try:
        from django_q.tasks import async_task

        async_task("notifications.tasks.dispatch_events", q_options={"task_name": "dispatch_events"})
    except Exception:  # the broker being down must never break the business transaction
        logger.warning("could not enqueue dispatch; the every-minute schedule will catch up",
                       exc_info=True)


def schedule_dispatch_on_commit() -> None:
    """Register one dispatch per transaction, however many events it writes."""
    if any(entry[1] is schedule_dispatch for entry in getattr(connection, "run_on_commit", [])):
        return
    transaction.on_commit(schedule_dispatch)
