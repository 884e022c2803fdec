from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from collections_app.models import Invoice
from reconciliation.models import BankTransaction, MatchingRule, Suggestion
from tests.reconciliation.conftest import sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("finance", "finance@example.fr", "pw-123456789")
    client.force_login(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_upload_review_queue_one_click_split_and_unmatch(world, staff):
    page = staff.get(reverse("admin:reconciliation_upload"))
    assert page.status_code == 200
    response = staff.post(reverse("admin:reconciliation_upload"),
                          {"file": SimpleUploadedFile("releve.xml", sample("camt053_v02_bnp.xml"))})
    assert response.status_code == 302
    queue = staff.get(reverse("admin:reconciliation_banktransaction_changelist") + "?status__exact=unmatched")
    assert b"INV-2024-0021 (100%)" in queue.content
    tx = BankTransaction.objects.get(bank_reference="BNP-0005")
    detail = staff.get(reverse("admin:reconciliation_banktransaction_change", args=[tx.pk]))
    assert detail.status_code == 200 and b"formaction" in detail.content
    suggestion = Suggestion.objects.get(transaction=tx)
    staff.post(reverse("admin:reconciliation_accept_suggestion", args=[suggestion.pk]))
    world.bernard_open.refresh_from_db()
    assert world.bernard_open.status == Invoice.Status.PAID

    changelist = reverse("admin:reconciliation_banktransaction_changelist")
    staff.post(changelist, {"action": "unmatch", "_selected_action": [tx.pk]})
    tx.refresh_from_db()
    assert tx.status == BankTransaction.Status.UNMATCHED

    unknown = BankTransaction.objects.get(bank_reference="BNP-0004")
    bad = staff.post(reverse("admin:reconciliation_split", args=[unknown.pk]),
                     {"customer": world.curie.pk, "lines": "NOPE 10.00"})
    assert b"no invoice NOPE" in bad.content
    extra = Invoice.objects.create(creditor=world.acme, customer=world.curie, external_ref="INV-2024-0900",
                                   amount_total="60.00", issue_date="2024-02-01", due_date="2024-03-01")
    staff.post(reverse("admin:reconciliation_split", args=[unknown.pk]),
               {"customer": world.curie.pk, "lines": "INV-2024-0900 60,00"})
    extra.refresh_from_db()
    assert extra.status == Invoice.Status.PAID
    world.curie.refresh_from_db()
    assert str(world.curie.credit_balance) == "39.99"


def test_matching_rules_are_listed_with_their_counts(world, staff):
    response = staff.get(reverse("admin:reconciliation_matchingrule_changelist"))
    assert response.status_code == 200
    assert MatchingRule.objects.count() == 4
    for name in ("reconciliation_bankstatement", "reconciliation_bankaccount", "collections_app_virtualiban",
                 "collections_app_virtualibanrange"):
        assert staff.get(reverse(f"admin:{name}_changelist")).status_code == 200


def test_choosing_the_creditor_of_an_account_created_by_an_import_reviews_it(world, staff):
    from reconciliation.imports import statement_import
    from reconciliation.models import BankAccount

    statement_import(source=sample("mt940_nl_ing.sta"))
    account = BankAccount.objects.get(account_id="NL20INGB0001234567")
    assert account.needs_review and account.creditor is None
    url = reverse("admin:reconciliation_bankaccount_change", args=[account.pk])
    response = staff.post(url, {"creditor": world.acme.pk, "name": "ING", "iban": account.iban,
                                "account_id": account.account_id, "bic": "", "currency": "EUR",
                                "write_off_tolerance": "0.00", "overpayment": "credit", "is_active": "on"})
    assert response.status_code == 302, response.content
    account.refresh_from_db()
    assert not account.needs_review and account.creditor == world.acme
    assert set(account.transactions.values_list("creditor", flat=True)) == {world.acme.pk}


def test_a_big_upload_in_the_admin_says_its_matching_runs_in_the_background(world, staff, settings):
    settings.RECONCILIATION_INLINE_MATCH_MAX = 3
    response = staff.post(reverse("admin:reconciliation_upload"),
                          {"file": SimpleUploadedFile("releve.xml", sample("camt053_v02_bnp.xml"))}, follow=True)
    assert b"8 transaction(s) imported (0 duplicate(s) skipped); they are being matched in the background" \
        in response.content
    assert BankTransaction.objects.filter(status=BankTransaction.Status.NEW).count() == 8
