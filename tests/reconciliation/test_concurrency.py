from __future__ import annotations

import itertools
import threading

import pytest
from django.db import connection

from collections_app.models import Payment
from reconciliation.imports import statement_import
from reconciliation.matching import transactions_match
from reconciliation.models import BankStatement, BankTransaction, Match
from tests.reconciliation.conftest import sample


def _in_threads(func, count: int = 2) -> list:
    results: list = []
    barrier = threading.Barrier(count)

    def work():
        try:
            barrier.wait()
            results.append(func())
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_file_imported_twice_at_once(world):
    results = _in_threads(lambda: statement_import(source=sample("camt053_v02_bnp.xml"), match=False))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.already_imported for r in results) == [False, True]
    assert BankStatement.objects.count() == 1 and BankTransaction.objects.count() == 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_matching_runs_at_once_allocate_once(world):
    statement_import(source=sample("camt053_v02_bnp.xml"), match=False)
    payments_before = Payment.objects.count()
    results = _in_threads(transactions_match)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert Match.objects.count() == 4
    assert sum(r.get("matched", 0) for r in results) == 4
    assert Payment.objects.count() == payments_before + 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_bulk_payments_and_per_row_payments_on_the_same_invoices_at_once(world):
    """The ledger locks the invoices it may touch (one ordered SELECT ... FOR UPDATE): a per-row
    payment running at the same time waits for it or makes it wait, and nothing is lost."""
    from decimal import Decimal

    from django.db.models import Sum

    from collections_app import services
    from collections_app.bulk import BulkPaymentLine, payments_record_bulk
    from collections_app.models import Customer, Invoice, PaymentAllocation, PaymentMethod

    dupont = world.dupont
    invoices = [world.dupont_old, world.dupont_new]  # 300.00 + 250.00 due

    def bulk():
        return payments_record_bulk(lines=[BulkPaymentLine(customer_id=dupont.pk, amount=Decimal("200.00"),
                                                           currency="EUR") for _ in range(2)])

    def per_row():
        for _ in range(2):
            payment = services.payment_create(customer=dupont, method=PaymentMethod.TRANSFER,
                                              amount=Decimal("200.00"))
            services.payment_record_success(payment=payment)

    turns = itertools.count()  # one thread takes the bulk path, the other the services
    results = _in_threads(lambda: bulk() if next(turns) == 0 else per_row(), count=2)
    assert not [r for r in results if isinstance(r, Exception)], results
    allocated = 0
    for inv in Invoice.objects.filter(pk__in=[i.pk for i in invoices]):
        on_invoice = PaymentAllocation.objects.filter(invoice=inv).aggregate(s=Sum("amount"))["s"]
        assert inv.amount_paid == on_invoice
        assert inv.status == Invoice.Status.PAID
        allocated += on_invoice
    assert allocated == Decimal("550.00")
    assert Customer.objects.get(pk=dupont.pk).credit_balance == Decimal("800.00") - allocated
