from __future__ import annotations

from typing import Any

from notifications.services import event_emit
from reconciliation.models import BankTransaction


def transaction_payload(tx: BankTransaction, previous: str | None = None) -> dict[str, Any]:
    return {
        "bank_transaction_id": tx.pk, "bank_statement_id": tx.statement_id, "bank_account_id": tx.bank_account_id,
        "status": tx.status, "previous_status": previous, "amount": tx.amount, "currency": tx.currency,
        "booking_date": tx.booking_date, "value_date": tx.value_date, "counterparty_name": tx.counterparty_name,
        "counterparty_iban": tx.counterparty_iban, "credited_iban": tx.credited_iban,
        "remittance_info": tx.remittance_info, "end_to_end_id": tx.end_to_end_id,
    }


def transaction_event_row(tx: BankTransaction, event_type: str, previous: str | None = None,
                          **extra: Any) -> tuple[str, int | None, dict[str, Any], dict[str, Any]]:
    """(type, creditor_id, payload, subjects) of a transaction's event, for events_emit_bulk."""
    return (event_type, tx.creditor_id, {**transaction_payload(tx, previous), **extra},
            {"bank_transaction": tx.pk, "bank_statement": tx.statement_id, "customer": tx.customer_id,
             "payment": extra.get("payment_id")})


def transaction_event(tx: BankTransaction, event_type: str, previous: str | None = None, **extra: Any) -> None:
    event_type, creditor_id, payload, subjects = transaction_event_row(tx, event_type, previous, **extra)
    event_emit(type=event_type, creditor_id=creditor_id, payload=payload, subjects=subjects)
