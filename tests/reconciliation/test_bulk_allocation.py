"""The set-based allocation path (collections_app.bulk) against the per-row services: on the
same scenario, both must leave exactly the same rows and write exactly the same events."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from collections_app import services
from collections_app.bulk import BulkPaymentLine, payments_record_bulk
from collections_app.models import Customer, Invoice, Payment, PaymentAllocation, PaymentMethod, PaymentRequest
from notifications.models import Event
from reconciliation.imports import statement_import
from reconciliation.matching import transactions_match
from reconciliation.models import BankAccount, BankStatement, BankTransaction, Match, MatchingRule, Suggestion
from tests.factories import CustomerFactory
from tests.reconciliation.builders import camt053
from tests.reconciliation.conftest import ACME_IBAN, invoice, sample

pytestmark = pytest.mark.postgres

ID_KEYS = {"payment_id": Payment, "bank_transaction_id": BankTransaction, "bank_statement_id": BankStatement}
SUBJECT_MODELS = {"payment": Payment, "bank_transaction": BankTransaction, "bank_statement": BankStatement}


class Ids:
    """Rows created during a run get stable names (P1, P2... in id order); older rows keep their id."""

    def __init__(self, since: dict[type, int]) -> None:
        self.names: dict[type, dict[int, str]] = {}
        for model, last in since.items():
            new = model.objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)
            self.names[model] = {pk: f"{model.__name__}#{n}" for n, pk in enumerate(new, start=1)}

    def __call__(self, model: type, pk: int | None) -> str:
        return "-" if pk is None else self.names[model].get(pk, str(pk))

    def text(self, value: str) -> str:
        return re.sub(r"#(\d+)", lambda m: self(Payment, int(m.group(1))), value)


def _normal_payload(ids: Ids, payload: dict) -> dict:
    out = {}
    for key, value in payload.items():
        if key in ID_KEYS and value is not None:
            value = ids(ID_KEYS[key], value)
        elif key == "reason" and isinstance(value, str):
            value = ids.text(value)
        out[key] = value
    return out


def _high_water() -> dict[type, int]:
    return {model: (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0)
            for model in (Payment, BankTransaction, BankStatement, Event)}


def snapshot(since: dict[type, int]) -> dict[str, Any]:
    """Every row the matching may touch, and the events written since `since`, ids normalised."""
    ids = Ids(since)
    rules = dict(MatchingRule.objects.values_list("pk", "kind"))
    events = []
    for event in Event.objects.filter(pk__gt=since[Event]).order_by("pk").prefetch_related("subjects"):
        subjects = sorted((s.kind, ids(SUBJECT_MODELS[s.kind], s.object_id) if s.kind in SUBJECT_MODELS
                           else str(s.object_id)) for s in event.subjects.all())
        events.append((event.type, event.creditor_id, _normal_payload(ids, event.payload), subjects))
    return {
        "payments": sorted((ids(Payment, p.pk), p.customer_id, p.payment_request_id or 0, p.method, p.status, p.amount,
                            p.currency, p.gateway, p.gateway_reference, p.end_to_end_id, p.attempt, p.reason_code,
                            p.succeeded_at is not None) for p in Payment.objects.all()),
        "allocations": sorted((ids(Payment, a.payment_id), a.invoice_id, a.amount)
                              for a in PaymentAllocation.objects.all()),
        "invoices": sorted((i.pk, i.amount_paid, i.amount_written_off, i.status, i.paid_at is None)
                           for i in Invoice.objects.all()),
        "requests": sorted((r.pk, r.amount_paid, r.status, r.paid_at is None) for r in PaymentRequest.objects.all()),
        "customers": sorted(Customer.objects.values_list("pk", "credit_balance")),
        "matches": sorted((ids(BankTransaction, m.transaction_id), rules.get(m.rule_id, "-"), m.customer_id,
                           ids(Payment, m.payment_id), ids(Payment, m.excess_payment_id), m.payment_request_id or 0,
                           m.amount, m.written_off, m.status) for m in Match.objects.all()),
        "transactions": sorted((ids(BankTransaction, t.pk), t.status, t.customer_id or 0, rules.get(t.matched_rule_id, "-"),
                                ids(Payment, t.returned_payment_id)) for t in BankTransaction.objects.all()),
        "suggestions": [(ids(BankTransaction, s.transaction_id), s.invoice_id, s.customer_id, s.score, s.reason)
                        for s in Suggestion.objects.order_by("pk")],
        "rule_counts": sorted(MatchingRule.objects.values_list("kind", "matched_count")),
        "events": events,
    }


def both_ways(scenario) -> tuple[dict, dict]:
    """Run `scenario(bulk)` per row then set-based from the same database state (savepoints)."""
    results = []
    for bulk in (False, True):
        since = _high_water()
        savepoint = transaction.savepoint()
        scenario(bulk)
        results.append(snapshot(since))
        transaction.savepoint_rollback(savepoint)
    return results[0], results[1]


def assert_same(per_row: dict, bulk: dict) -> None:
    for key in per_row:
        if key == "events":
            continue
        assert bulk[key] == per_row[key], key
    assert len(bulk["events"]) == len(per_row["events"])
    for n, (ours, theirs) in enumerate(zip(bulk["events"], per_row["events"], strict=True)):
        assert ours == theirs, f"event {n}"


def _statement(world) -> bytes:
    """Transfers that exercise every branch of allocate(), several on the same debts."""
    w = world
    w.account.overpayment = BankAccount.Overpayment.CREDIT
    w.account.save()
    extra = CustomerFactory(creditor=w.acme, name="Hélène Petit")
    petit = [invoice(extra, "INV-2024-0090", "40.00", due=dt.date(2024, 1, 10)),
             invoice(extra, "INV-2024-0091", "60.00", due=dt.date(2024, 1, 20))]
    services.payment_request_create(creditor=w.acme, customer=extra, invoices=[petit[1]], reference="PR-PETIT-1",
                                    expires_at=timezone.now() + dt.timedelta(days=10))
    entries = [
        {"amount": "120.00", "ref": "B-1", "text": "Facture INV-2024-0001", "name": "M Curie"},  # exact
        {"amount": "100.00", "ref": "B-2", "text": "inv 2024 0003 acompte", "name": "P Martin"},  # partial
        {"amount": "150.00", "ref": "B-3", "text": "INV-2024-0003 solde", "name": "P Martin"},  # rest, same invoice
        {"amount": "600.00", "ref": "B-4", "text": "virement", "name": "J Dupont", "credited": w.dupont_viban.iban},
        {"amount": "120.00", "ref": "B-5", "text": "INV-2024-0070", "name": "L Moreau"},  # invoice with a pay link
        {"amount": "250.00", "ref": "B-6", "text": "PR-ACME-77", "name": "L Moreau"},  # request, excess to credit
        {"amount": "60.00", "ref": "B-7", "text": "prélèvement", "name": "A Roux", "e2e": "E2E-DD-0002"},  # rule 3
        {"amount": "149.50", "ref": "B-8", "text": "INV-2024-0021", "name": "S Bernard"},  # write-off 0.50
        {"amount": "70.00", "ref": "B-9", "text": "INV-2O24-0002", "name": "M Curie"},  # typo, partial
        {"amount": "75.00", "ref": "B-10", "text": "paiement", "name": "Alain Roux"},  # suggestion only
        {"amount": "12.34", "ref": "B-11", "text": "merci", "name": "Inconnu"},  # nothing
        {"amount": "100.00", "ref": "B-12", "text": "INV-2024-0090", "name": "H Petit"},  # pay link of the other
        {"amount": "30.00", "ref": "B-13", "text": "INV-2024-0001", "name": "M Curie"},  # already paid: review
    ]
    return camt053(ACME_IBAN, entries)


@pytest.mark.parametrize("staged_updates", [False, True], ids=["values", "copy"])
def test_bulk_matching_writes_the_same_rows_and_events_as_the_services(world, staged_updates, monkeypatch):
    if staged_updates:  # the updates of big chunks go through a COPYed staging table: the same rows
        monkeypatch.setattr("collections_app.bulk.COPY_UPDATE_MIN", 0)
    document = _statement(world)

    def scenario(bulk: bool) -> None:
        statement_import(source=document, filename="mix.xml", match=False)
        statement_import(source=sample("camt053_v02_bnp.xml"), match=False)
        transactions_match(bulk=bulk)

    per_row, bulk = both_ways(scenario)
    assert len(per_row["matches"]) >= 9
    assert {e[0] for e in per_row["events"]} >= {
        "transfer.received", "payment.created", "payment.succeeded", "invoice.paid", "invoice.partially_paid",
        "invoice.written_off", "payment_request.paid", "customer.credit_balance_changed", "reconciliation.matched",
        "reconciliation.unmatched"}
    assert_same(per_row, bulk)


def test_bulk_matching_with_spread_over_payments_is_the_same(world):
    document = _statement(world)
    world.account.overpayment = BankAccount.Overpayment.SPREAD
    world.account.save()

    def scenario(bulk: bool) -> None:
        statement_import(source=document, filename="mix.xml", match=False)
        transactions_match(bulk=bulk)

    per_row, bulk = both_ways(scenario)
    assert_same(per_row, bulk)


def test_rematching_after_the_bulk_path_changes_nothing(world):
    statement_import(source=_statement(world), filename="mix.xml", match=False)
    transactions_match(bulk=True)
    since = _high_water()
    before = snapshot(since)
    assert transactions_match(bulk=True).get("matched", 0) == 0
    assert snapshot(since) == before


def test_payments_record_bulk_is_payment_create_then_record_success(world):
    w = world
    request = w.moreau_request
    lines = [
        BulkPaymentLine(customer_id=w.moreau.pk, amount=Decimal("120.00"), currency="EUR",
                        payment_request_id=request.pk, gateway="bank", gateway_reference="R1"),
        BulkPaymentLine(customer_id=w.moreau.pk, amount=Decimal("180.00"), currency="EUR",
                        payment_request_id=request.pk, gateway="bank", gateway_reference="R2"),
        BulkPaymentLine(customer_id=w.dupont.pk, amount=Decimal("400.00"), currency="EUR"),  # oldest first
        BulkPaymentLine(customer_id=w.curie.pk, amount=Decimal("100.00"), currency="EUR",
                        allocations=[(w.curie_2.pk, Decimal("80.00"))], method=PaymentMethod.CARD),  # 20 to credit
        BulkPaymentLine(customer_id=w.dupont.pk, amount=Decimal("500.00"), currency="EUR"),  # rest + credit
    ]

    def scenario(bulk: bool) -> None:
        if bulk:
            payments_record_bulk(lines=lines)
            return
        for line in lines:
            customer = Customer.objects.get(pk=line.customer_id)
            with transaction.atomic():
                payment = services.payment_create(
                    customer=customer, method=line.method, amount=line.amount, currency=line.currency,
                    payment_request=PaymentRequest.objects.get(pk=line.payment_request_id)
                    if line.payment_request_id else None,
                    gateway=line.gateway, gateway_reference=line.gateway_reference)
                allocations = None
                if line.allocations is not None:
                    allocations = [services.AllocationLine(invoice=Invoice.objects.get(pk=pk), amount=amount)
                                   for pk, amount in line.allocations]
                services.payment_record_success(payment=payment, allocations=allocations)

    per_row, bulk = both_ways(scenario)
    assert [r[2] for r in per_row["requests"] if r[0] == request.pk] == ["paid"]
    assert {c[0]: c[1] for c in per_row["customers"]}[w.curie.pk] == Decimal("20.00")
    assert_same(per_row, bulk)


def test_payments_record_bulk_refuses_what_the_services_refuse(world):
    from collections_app.errors import AmountExceedsBalance

    request = world.moreau_request
    with pytest.raises(AmountExceedsBalance):
        payments_record_bulk(lines=[
            BulkPaymentLine(customer_id=world.moreau.pk, amount=Decimal("200.00"), currency="EUR",
                            payment_request_id=request.pk),
            BulkPaymentLine(customer_id=world.moreau.pk, amount=Decimal("200.00"), currency="EUR",
                            payment_request_id=request.pk)])
    request.refresh_from_db()
    assert request.amount_paid == 0
    assert not Payment.objects.filter(payment_request=request).exists()


def test_ledger_locks_the_open_invoices_of_a_customer_it_was_not_told_about(world):
    from collections_app.bulk import PaymentLedger

    ledger = PaymentLedger.lock(customer_ids=[world.dupont.pk], open_invoices_of=[])
    assert ledger.invoices == {}
    oldest_first = ledger.open_invoices(world.dupont.pk, "EUR")
    assert [i.pk for i in oldest_first] == [world.dupont_old.pk, world.dupont_new.pk]
    payment = ledger.payment_succeed(customer_id=world.dupont.pk, amount=Decimal("320.00"), currency="EUR",
                                     method=PaymentMethod.TRANSFER)
    ledger.flush()
    world.dupont_old.refresh_from_db()
    world.dupont_new.refresh_from_db()
    assert (world.dupont_old.status, world.dupont_new.amount_paid) == (Invoice.Status.PAID, Decimal("20.00"))
    assert sorted(payment.allocations.values_list("invoice_id", "amount")) == [
        (world.dupont_old.pk, Decimal("300.00")), (world.dupont_new.pk, Decimal("20.00"))]
