from __future__ import annotations

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
