from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from collections_app import services
from notifications import dispatch
from notifications.models import Event, EventHandlerRun
from notifications.services import OutboxOutsideTransaction, UnknownEventType, event_emit
from tests.factories import make_invoice

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def recorder():
    seen: list[int] = []

    def handler(event: Event) -> None:
        seen.append(event.pk)

    dispatch.register_handler("test.recorder", handler)
    yield seen
    dispatch.unregister_handler("test.recorder")


def test_event_is_written_with_the_change(customer):
    # when
    invoice = make_invoice(customer, amount="42.00")
    # then
    event = Event.objects.filter(type="invoice.created").get()
    assert event.payload["invoice_id"] == invoice.pk
    assert event.payload["amount_total"] == "42.00"  # decimal string, never a float
    assert event.creditor_id == customer.creditor_id
    assert set(event.subjects.values_list("kind", "object_id")) == {("invoice", invoice.pk),
                                                                     ("customer", customer.pk)}


def test_nothing_is_written_when_the_transaction_rolls_back(customer):
    before = Event.objects.count()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            make_invoice(customer)
            raise RuntimeError("boom")
    assert Event.objects.count() == before
    assert not customer.invoices.exists()


def test_event_emit_refuses_to_run_outside_a_transaction(db):
    with pytest.raises(OutboxOutsideTransaction):
        event_emit(type="customer.created", payload={})


def test_unknown_event_types_are_refused(db):
    with pytest.raises(UnknownEventType):
        with transaction.atomic():
            event_emit(type="no.such.event", payload={})


def test_dispatcher_runs_each_handler_once_per_event_even_when_run_twice(customer, recorder):
    make_invoice(customer)
    first = dispatch.dispatch_pending()
    second = dispatch.dispatch_pending()
    assert first == Event.objects.count() and second == 0
    assert sorted(recorder) == sorted(Event.objects.values_list("id", flat=True))
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()


def test_a_failing_handler_is_retried_and_the_others_are_not_run_again(customer, recorder):
    calls = {"n": 0}

    def flaky(event):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("receiver down")

    dispatch.register_handler("test.flaky", flaky, event_types={"customer.created"})
    try:
        services.customer_update(customer=customer, name="Renamed")  # one more event
        dispatch.dispatch_pending()
        failed = Event.objects.get(type="customer.created", payload__customer_id=customer.pk)
        assert failed.dispatched_at is None and "receiver down" in failed.last_error
        dispatch.dispatch_pending()
        failed.refresh_from_db()
        assert failed.dispatched_at is not None
        assert recorder.count(failed.pk) == 1  # the recorder ran once although the event was dispatched twice
        assert EventHandlerRun.objects.filter(event=failed, handler="test.flaky").count() == 1
    finally:
        dispatch.unregister_handler("test.flaky")


@pytest.mark.postgres
def test_two_dispatchers_at_once_never_handle_an_event_twice(customer, recorder):
    for i in range(30):
        make_invoice(customer, amount=Decimal(10 + i))
    lock = threading.Lock()

    def slow(event):
        with lock:
            pass

    dispatch.register_handler("test.slow", slow)
    try:
        def worker():
            try:
                dispatch.dispatch_pending(batch_size=5)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not Event.objects.filter(dispatched_at__isnull=True).exists()
        assert len(recorder) == len(set(recorder)) == Event.objects.count()
        assert EventHandlerRun.objects.filter(handler="test.slow").count() == Event.objects.count()
    finally:
        dispatch.unregister_handler("test.slow")


def _rows(events):
    return [(e.type, e.creditor_id, e.payload, sorted((s.kind, s.object_id) for s in e.subjects.all()))
            for e in events]


def test_events_emit_bulk_writes_what_event_emit_writes_in_order():
    import datetime as dt

    from notifications.services import events_emit_bulk

    specs = [("customer.created", 7, {"customer_id": 1, "amount": Decimal("1.10"), "day": dt.date(2024, 3, 4)},
              {"customer": 1}),
             ("invoice.paid", None, {"invoice_id": 2, "tags": ["a"]}, {"invoice": [2, 2, 3], "customer": None}),
             ("customer.created", 7, {"customer_id": 4}, None)]
    with transaction.atomic():
        one_by_one = [event_emit(type=t, creditor_id=c, payload=p, subjects=s) for t, c, p, s in specs]
        ids = events_emit_bulk(specs)
    assert ids == sorted(ids) and ids[0] > one_by_one[-1].pk
    bulk = [Event.objects.get(pk=pk) for pk in ids]
    assert _rows(bulk) == _rows(one_by_one)
    assert bulk[0].payload == {"customer_id": 1, "amount": "1.10", "day": "2024-03-04"}


def test_events_emit_bulk_refuses_unknown_types_and_running_outside_a_transaction():
    from notifications.services import events_emit_bulk

    with pytest.raises(OutboxOutsideTransaction):
        events_emit_bulk([("customer.created", None, {}, None)])
    with transaction.atomic(), pytest.raises(UnknownEventType):
        events_emit_bulk([("customer.created", None, {}, None), ("no.such.event", None, {}, None)])
    assert not Event.objects.exists()
