from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collections_app.models import Customer, Invoice, Payment, PaymentAllocation
from notifications.models import Event
from reconciliation.imports import statement_import
from reconciliation.matching import transactions_match
from reconciliation.models import BankAccount, BankTransaction, Match, Suggestion
from reconciliation.selectors import invoices_probably_covered
from reconciliation.services import match_reverse, suggestion_accept, transaction_ignore, transaction_match_manual
from tests.factories import CreditorFactory, CustomerFactory
from tests.reconciliation.builders import camt053
from tests.reconciliation.conftest import invoice, sample

pytestmark = pytest.mark.django_db


def test_one_click_match_split_and_unmatch(world):
    statement_import(source=sample("camt053_v02_bnp.xml"))
    suggestion = Suggestion.objects.get(transaction__bank_reference="BNP-0005")
    match = suggestion_accept(suggestion=suggestion)
    world.bernard_open.refresh_from_db()
    assert world.bernard_open.status == Invoice.Status.PAID
    assert match.transaction.status == BankTransaction.Status.MATCHED

    # unmatch: the payment is reversed, the invoice re-opened, the transaction back in the queue
    tx = match_reverse(match=match)
    world.bernard_open.refresh_from_db()
    assert tx.status == BankTransaction.Status.UNMATCHED
    assert world.bernard_open.status == Invoice.Status.OPEN
    match.refresh_from_db()
    assert match.status == Match.Status.REVERSED
    assert Payment.objects.get(pk=match.payment_id).status == Payment.Status.REVERSED
    assert Event.objects.filter(type="reconciliation.match_reversed").exists()
    assert Event.objects.filter(type="invoice.reopened").exists()

    # split the unknown 99.99 across two of Curie's... no: across Dupont's remaining invoice and credit
    unknown = BankTransaction.objects.get(bank_reference="BNP-0004")
    other = invoice(world.bernard, "INV-2024-0022", "40.00")
    match = transaction_match_manual(transaction_=unknown, customer=world.bernard,
                                     lines=[(world.bernard_open, Decimal("50.00")), (other, Decimal("40.00"))])
    world.bernard_open.refresh_from_db()
    other.refresh_from_db()
    world.bernard.refresh_from_db()
    assert world.bernard_open.amount_paid == Decimal("50.00")
    assert other.status == Invoice.Status.PAID
    assert world.bernard.credit_balance == Decimal("9.99")

    ignored = transaction_ignore(transaction_=BankTransaction.objects.get(bank_reference="BNP-0005"))
    assert ignored.status == BankTransaction.Status.IGNORED


def test_split_cannot_exceed_the_transfer(world):
    from collections_app.errors import ValidationFailed

    statement_import(source=sample("camt053_v02_bnp.xml"))
    unknown = BankTransaction.objects.get(bank_reference="BNP-0004")
    big = invoice(world.bernard, "INV-2024-0099", "500.00")
    with pytest.raises(ValidationFailed):
        transaction_match_manual(transaction_=unknown, customer=world.bernard, lines=[(big, Decimal("100.00"))])


def test_invoices_probably_covered_by_a_transfer_in_the_review_queue(world):
    statement_import(source=sample("camt053_v02_bnp.xml"))
    lonely = invoice(world.curie, "INV-2024-0500", "99.99")
    covered = invoices_probably_covered(invoice_ids=[world.bernard_open.pk, lonely.pk, world.martin_inv.pk],
                                        today=dt.date(2024, 3, 10))
    assert set(covered) == {world.bernard_open.pk}  # INCONNU's 99.99 does not look like Curie
    assert "150.00" in covered[world.bernard_open.pk]
    assert invoices_probably_covered(invoice_ids=[world.bernard_open.pk], today=dt.date(2024, 9, 1)) == {}


amounts = st.decimals(min_value=Decimal("1.00"), max_value=Decimal("500.00"), places=2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invoice_amounts=st.lists(amounts, min_size=1, max_size=5),
       transfers=st.lists(st.tuples(st.integers(min_value=0, max_value=5), amounts,
                                    st.sampled_from(["ref", "ref-typo", "name", "none"])),
                          min_size=1, max_size=6),
       spread=st.booleans())
def test_allocations_never_exceed_and_matching_is_stable(db, invoice_amounts, transfers, spread):
    with transaction.atomic():
        creditor = CreditorFactory(iban="FR7630004008280001012345691")
        account = BankAccount.objects.create(
            creditor=creditor, iban=creditor.iban, account_id=f"PROP-{creditor.pk}",
            write_off_tolerance=Decimal("0.50"),
            overpayment=BankAccount.Overpayment.SPREAD if spread else BankAccount.Overpayment.CREDIT)
        customer = CustomerFactory(creditor=creditor, name="Propriété Testée")
        invoices = [invoice(customer, f"P{creditor.pk}-{i:04d}", str(a)) for i, a in enumerate(invoice_amounts)]
        entries = []
        for n, (index, amount, how) in enumerate(transfers):
            target = invoices[index % len(invoices)]
            text = {"ref": f"Facture {target.external_ref}", "ref-typo": target.external_ref.replace("0", "O"),
                    "name": "", "none": "merci"}[how]
            entries.append({"amount": amount, "ref": f"P-{n}", "text": text,
                            "name": customer.name if how == "name" else "Quelqu'un"})
        statement_import(source=camt053(account.account_id, entries), filename="prop.xml")
        for inv in Invoice.objects.filter(customer=customer):
            assert inv.amount_paid + inv.amount_written_off <= inv.amount_total
        for payment in Payment.objects.filter(customer=customer):
            allocated = payment.allocations.aggregate(s=Sum("amount"))["s"] or Decimal("0")
            assert allocated <= payment.amount
        for match in Match.objects.filter(customer=customer, status=Match.Status.ACTIVE):
            paid = sum(p.amount for p in (match.payment, match.excess_payment) if p is not None)
            assert paid <= match.transaction.amount
        customer.refresh_from_db()
        total_in = sum(t["amount"] for t in entries)
        allocated_total = (PaymentAllocation.objects.filter(payment__customer=customer)
                           .aggregate(s=Sum("amount"))["s"] or Decimal("0"))
        assert allocated_total + customer.credit_balance <= total_in

        def snapshot():
            return (list(BankTransaction.objects.filter(bank_account=account).order_by("pk")
                         .values_list("status", flat=True)),
                    Payment.objects.count(), PaymentAllocation.objects.count(), Event.objects.count(),
                    list(Suggestion.objects.order_by("pk").values_list("pk", "score")),
                    list(Customer.objects.filter(pk=customer.pk).values_list("credit_balance", flat=True)))

        before = snapshot()
        transactions_match()
        assert snapshot() == before
        transaction.set_rollback(True)


def test_dunning_waits_for_a_transfer_in_the_review_queue(world):
    from collections_app.dunning.pauses import pause_providers, paused_invoices

    assert "transfer_awaiting_match" in pause_providers()
    statement_import(source=sample("camt053_v02_bnp.xml"))
    paused = paused_invoices([world.bernard_open.pk, world.martin_inv.pk], dt.date(2024, 3, 10))
    assert world.bernard_open.pk in paused and "150.00" in paused[world.bernard_open.pk]
    assert "transfer" not in paused.get(world.martin_inv.pk, "")  # other pauses (credit balance) may apply


def test_unmatching_a_transfer_takes_its_write_off_back(world):
    # given: the batch's 79.50 for an 80.00 invoice, the 0.50 written off under the tolerance
    statement_import(source=sample("camt053_v02_bnp.xml"))
    world.curie_2.refresh_from_db()
    assert (world.curie_2.status, world.curie_2.amount_written_off) == (Invoice.Status.WRITTEN_OFF, Decimal("0.50"))
    match = Match.objects.get(transaction__amount=Decimal("79.50"), status=Match.Status.ACTIVE)
    assert match.written_off == Decimal("0.50")
    # when
    match_reverse(match=match)
    # then: the whole invoice is due again, and the timeline says why
    world.curie_2.refresh_from_db()
    assert world.curie_2.status == Invoice.Status.OPEN
    assert (world.curie_2.amount_paid, world.curie_2.amount_written_off) == (Decimal("0.00"), Decimal("0.00"))
    event = Event.objects.get(type="invoice.write_off_reversed")
    assert event.payload["written_off_amount"] == "0.50" and event.payload["previous_status"] == "written_off"


def test_a_payer_account_known_from_a_mandate_or_an_earlier_transfer_is_suggested_never_matched(world):
    from collections_app import services

    # given Curie signed a mandate on one account, and Martin paid from another before
    mandate_iban, martin_iban = "FR7630006000011234567890189", "DE89370400440532013000"
    services.mandate_create(creditor=world.acme, customer=world.curie, holder_name="Marie Curie",
                            iban=mandate_iban)
    statement_import(source=camt053(world.account.iban, [
        {"amount": "50.00", "ref": "K-1", "text": "INV-2024-0003", "name": "P Martin", "payer_iban": martin_iban}]))
    assert BankTransaction.objects.get(bank_reference="K-1").status == BankTransaction.Status.MATCHED
    # when transfers without any reference come from those accounts, under other names
    statement_import(source=camt053(world.account.iban, [
        {"amount": "80.00", "ref": "K-2", "text": "virement", "name": "SCI DES LILAS", "payer_iban": mandate_iban},
        {"amount": "33.00", "ref": "K-3", "text": "acompte", "name": "M. ET MME MARTIN", "payer_iban": martin_iban},
        {"amount": "80.00", "ref": "K-4", "text": "virement", "name": "Inconnu", "payer_iban": "FR1420041010050500013M02606"},
    ], day="2024-03-05"))
    # then they wait in the review queue, with the known customer's invoices suggested
    by_ref = {tx.bank_reference: tx for tx in BankTransaction.objects.filter(bank_reference__in=["K-2", "K-3", "K-4"])}
    assert {tx.status for tx in by_ref.values()} == {BankTransaction.Status.UNMATCHED}
    exact = list(by_ref["K-2"].suggestions.values_list("invoice_id", "score"))
    assert exact == [(world.curie_2.pk, 95)]
    assert "…0189" in by_ref["K-2"].suggestions.get().reason
    oldest = list(by_ref["K-3"].suggestions.values_list("invoice_id", "score"))
    assert oldest == [(world.martin_inv.pk, 50)]
    assert not by_ref["K-4"].suggestions.exists()
    # and matching again changes nothing
    before = sorted(Suggestion.objects.values_list("transaction_id", "invoice_id", "score"))
    transactions_match(transaction_ids=[tx.pk for tx in by_ref.values()])
    assert sorted(Suggestion.objects.values_list("transaction_id", "invoice_id", "score")) == before
