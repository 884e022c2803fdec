import json

import pytest
from django.core.management import call_command

from collections_app.models import PaymentRequest
from reconciliation.models import BankTransaction


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_fills_the_review_queue(capsys):
    call_command("seed_demo", "--json")
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["reconciliation"]["bank_transactions_created"] == 4
    call_command("seed_demo", "--json")
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["reconciliation"]["bank_transactions_created"] == 0
    assert BankTransaction.objects.count() == 4
    assert BankTransaction.objects.filter(status="matched").count() == 2
    assert BankTransaction.objects.filter(status="unmatched").count() == 2
    # the invoice number quoted settles the invoice's own pay link as well
    request = PaymentRequest.objects.get(invoices__external_ref="F2026-1000")
    assert request.status == PaymentRequest.Status.PAID
