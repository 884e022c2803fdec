"""What every statement parser yields: a stream of StatementHeader and Entry items.

A parser yields the header of a statement, then its entries, then possibly the header again
with balances known only at the end (MT940's closing balance). Amounts are positive Decimals
with a direction; dates are the bank's business dates.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException


class StatementParseError(ValueError):
    """The file cannot be read: nothing of it is imported. `line` or `entry` say where."""

    def __init__(self, message: str, *, line: int | None = None, entry: int | None = None):
        where = []
        if line is not None:
            where.append(f"line {line}")
        if entry is not None:
            where.append(f"entry {entry}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.message = str(self)
        self.line = line
        self.entry = entry


class UnsupportedFormat(StatementParseError):
    pass


@dataclass
class StatementHeader:
    format: str
    version: str = ""
    index: int = 0
    statement_id: str = ""
    sequence_number: str = ""
    created_at: dt.datetime | None = None
    account_iban: str = ""
    account_other_id: str = ""
    account_bic: str = ""
    currency: str = ""
    from_date: dt.date | None = None
    to_date: dt.date | None = None
    opening_balance: Decimal | None = None
    closing_balance: Decimal | None = None
    final: bool = False  # True when re-yielded at the end with the last balances


@dataclass
class Entry:
    booking_date: dt.date
    amount: Decimal
    direction: str  # "CRDT" or "DBIT"
    currency: str = ""
    value_date: dt.date | None = None
    is_reversal: bool = False
    reason_code: str = ""
    bank_reference: str = ""
    entry_reference: str = ""
    end_to_end_id: str = ""
    transaction_id: str = ""
    mandate_reference: str = ""
    bank_transaction_code: str = ""
    counterparty_name: str = ""
    counterparty_iban: str = ""
    credited_iban: str = ""
    remittance_info: str = ""
    structured_reference: str = ""
    batch_reference: str = ""
    position: int = 0  # the transaction's index inside a batch entry
    booked: bool = True  # False for ISO 20022 PDNG / INFO entries: not on the account yet
    extra: dict = field(default_factory=dict)


# ISO 20022 "NOTPROVIDED" and friends mean "no end-to-end id".
EMPTY_REFERENCES = {"", "NOTPROVIDED", "NONREF", "NONE", "NOT PROVIDED"}


def clean_reference(value: str | None) -> str:
    """A reference, or "" for the placeholders banks write instead (NOTPROVIDED, NONREF, zeros):
    a placeholder is no reference, or identical movements would be taken for one."""
    value = (value or "").strip()
    return "" if value.upper() in EMPTY_REFERENCES or not value.strip("0") else value[:64]


IBAN_LIKE = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")


def iban_or_empty(value: str | None) -> str:
    """The IBAN a field holds, compact, when it holds a valid one (fields that may carry an IBAN
    also carry account numbers, creditor identifiers or names)."""
    compact = (value or "").replace(" ", "").upper()
    if not IBAN_LIKE.fullmatch(compact):
        return ""
    try:
        return IBAN(compact).compact
    except SchwiftyException:
        return ""


def french_iban(bank: str, branch: str, account: str) -> str:
    """The IBAN of a French RIB's bank, branch and account codes ("" when they are not one);
    schwifty computes the RIB key and the IBAN check digits."""
    try:
        return IBAN.generate("FR", bank_code=bank, branch_code=branch, account_code=account).compact
    except SchwiftyException:
        return ""
