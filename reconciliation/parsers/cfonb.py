"""French CFONB 120 statements ("relevés de compte 120 caractères").

No maintained stand-alone Python library reads them (only Odoo add-ons), so this is a small
fixed-width reader following the CFONB brochure: records 01 (previous balance), 04 (movement),
05 (movement complement, with qualifiers such as NPY payer name, LCC/LIB remittance text, RCN
end-to-end reference), 07 (new balance). Lines may be separated by newlines or not at all.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import IO

from reconciliation.parsers.base import (
    Entry, StatementHeader, StatementParseError, clean_reference, french_iban, iban_or_empty,
)

RECORD_LENGTH = 120
RECORD_CODES = {"01", "04", "05", "07"}
# The last digit of an amount carries its sign: { A..I = +0..+9 (credit), } J..R = -0..-9 (debit).
_POSITIVE = {"{": 0, **{chr(ord("A") + i): i + 1 for i in range(9)}}
_NEGATIVE = {"}": 0, **{chr(ord("J") + i): i + 1 for i in range(9)}}
# Interbank operation codes of rejected / returned items.
RETURN_OPERATION_CODES = {"07", "14", "16", "44", "63", "66", "68", "88", "B2", "B3", "B4"}


def looks_like(data: bytes) -> bool:
    records = _records(data[: RECORD_LENGTH * 8 + 16])
    return bool(records) and records[0][1][:2] == "01" and all(r[:2] in RECORD_CODES for _n, r in records)


def _records(data: bytes) -> list[tuple[int, str]]:
    # A DOS end-of-file mark (Ctrl-Z) still ends some bank files.
    text = data.decode("cp1252", errors="replace").replace("\x1a", "")
    lines = [ln.rstrip("\r") for ln in text.split("\n")] if "\n" in text.rstrip("\r\n") else \
        [text.rstrip("\r\n")[i:i + RECORD_LENGTH] for i in range(0, len(text.rstrip("\r\n")), RECORD_LENGTH)]
    records = []
    for number, line in enumerate(lines, start=1):
        if len(line) > RECORD_LENGTH and len(line.rstrip()) > RECORD_LENGTH and _glued(line):
            # records glued together on one line (some exports put a newline only every N records)
            records.extend((number, line[i:i + RECORD_LENGTH]) for i in range(0, len(line), RECORD_LENGTH))
        elif line.strip():
            # trailing spaces beyond column 120 are padding, not data
            records.append((number, line[:RECORD_LENGTH] if not line[RECORD_LENGTH:].strip() else line))
    return [(n, r) for n, r in records if r.strip()]


def _glued(line: str) -> bool:
    chunks = [line[i:i + RECORD_LENGTH] for i in range(0, len(line.rstrip()), RECORD_LENGTH)]
    return all(c[:2] in RECORD_CODES for c in chunks)


def _amount(field: str, decimals: int, line: int) -> Decimal:
    field = field.strip()
    if not field:
        raise StatementParseError("empty amount", line=line)
    last, digits = field[-1], field[:-1]
    if not digits.isdigit() and digits:
        raise StatementParseError(f"invalid amount {field!r}", line=line)
    if last in _POSITIVE:
        sign, unit = 1, _POSITIVE[last]
    elif last in _NEGATIVE:
        sign, unit = -1, _NEGATIVE[last]
    elif last.isdigit():
        sign, unit = 1, int(last)
    else:
        raise StatementParseError(f"invalid amount sign {last!r}", line=line)
    return sign * Decimal(int(digits or "0") * 10 + unit).scaleb(-decimals)


def _date(field: str, line: int) -> dt.date | None:
    field = field.strip()
    if not field or field == "000000":
        return None
    try:
        return dt.datetime.strptime(field, "%d%m%y").date()
    except ValueError:
        raise StatementParseError(f"invalid date {field!r}", line=line) from None


def _account(bank: str, branch: str, account: str) -> tuple[str, str]:
    iban = french_iban(bank, branch, account)
    return (iban, "") if iban else ("", f"{bank}{branch}{account}")


def parse(stream: IO[bytes]) -> Iterator[StatementHeader | Entry]:
    records = _records(stream.read())
    if not records:
        raise StatementParseError("empty CFONB file")
    header: StatementHeader | None = None
    entry: Entry | None = None
    index = -1
    number = 0
    credits = debits = Decimal(0)
    seen: Counter[tuple] = Counter()  # identical movements with the same bank references
    for line, record in records:
        if len(record) < RECORD_LENGTH:
            record = record.ljust(RECORD_LENGTH)
        if len(record) > RECORD_LENGTH:
            raise StatementParseError(f"record of {len(record)} characters, expected {RECORD_LENGTH}", line=line)
        code = record[0:2]
        if code not in RECORD_CODES:
            raise StatementParseError(f"unknown CFONB record type {code!r}", line=line)
        bank, branch, currency, decimals_field = record[2:7], record[11:16], record[16:19], record[19:20]
        account = record[21:32]
        decimals = int(decimals_field) if decimals_field.isdigit() else 2
        if code == "01":
            if entry is not None:
                yield _finish(entry, seen, header)
                entry = None
            index += 1
            iban, other = _account(bank, branch, account)
            header = StatementHeader(format="cfonb120", version="CFONB 120", index=index, account_iban=iban,
                                     account_other_id=other, currency=currency.strip().upper(),
                                     from_date=_date(record[34:40], line),
                                     opening_balance=_amount(record[90:104], decimals, line))
            yield header
        elif header is None:
            raise StatementParseError("movement before the opening balance record (01)", line=line)
        elif code == "04":
            if entry is not None:
                yield _finish(entry, seen, header)
            number += 1
            signed = _amount(record[90:104], decimals, line)
            if signed == 0:
                raise StatementParseError("movement of zero", line=line)
            operation = record[32:34]
            reject = record[40:42].strip()
            booking = _date(record[34:40], line)
            # Some banks leave the entry number at zeros: no reference then, so that two identical
            # fees the same day stay two movements (see imports.natural_key).
            entry_no = record[81:88].strip() if record[81:88].strip("0 ") else ""
            if booking is None:
                raise StatementParseError("movement without a booking date", line=line)
            entry = Entry(
                booking_date=booking, value_date=_date(record[42:48], line), amount=abs(signed),
                direction="CRDT" if signed > 0 else "DBIT", currency=currency.strip().upper() or header.currency,
                # some banks leave the interbank code blank and give only their internal one
                bank_transaction_code=f"{operation.strip()}/{record[7:11].strip()}".strip("/"),
                bank_reference=entry_no, entry_reference=record[104:120].strip(),
                is_reversal=operation in RETURN_OPERATION_CODES or bool(reject and reject != "00"),
                reason_code=reject if reject and reject != "00" else "",
            )
            # the label: 31 characters, which a text without qualifier in 05 records may continue
            _text(entry, "label", record[48:79], full=record[78] != " ")
            if signed > 0:
                credits += signed
            else:
                debits -= signed
        elif code == "05":
            if entry is None:
                raise StatementParseError("complement record (05) without a movement (04)", line=line)
            qualifier = record[45:48]
            if not qualifier.strip() or qualifier.isdigit():
                # no qualifier (blank, or the end of a date some banks write there): the older
                # layout, free text continuing the movement's label, from column 49
                _text(entry, "label", record[48:118],
                      full=record[117] != " " or (record[78] != " " and not record[79:118].strip()))
            else:
                _complement(entry, qualifier, record[48:118])
        elif code == "07":
            if entry is not None:
                yield _finish(entry, seen, header)
                entry = None
            header.closing_balance = _amount(record[90:104], decimals, line)
            header.to_date = _date(record[34:40], line)
            header.final = True
            yield header
    if entry is not None:
        yield _finish(entry, seen, header)
    if header is not None and not header.final:
        raise StatementParseError("the file ends without a new balance record (07)")


REASON_CODE = re.compile(r"\b([A-Z]{2}\d{2})\b")


# Sequence types that follow the mandate reference in a RUM record.
SEQUENCE_TYPES = {"FRST", "RCUR", "OOFF", "FNAL"}
# 05 records whose text goes to the remittance information (LCS too, after its reference).
TEXT_QUALIFIERS = {"LCC", "LC2", "LIB", "REF", "LCZ"}
# Where an entry's pieces of text wait in Entry.extra until the entry is finished.
TEXTS = "_texts"


def _complement(entry: Entry, qualifier: str, detail: str) -> None:
    """One 05 record: its qualifier and its 70 characters (some are two fields of 35).
    Names and identifiers are only collected here: which side is the counterparty depends on
    the direction and on a return, known only once all the entry's records are read."""
    value = detail.strip()
    first, second = detail[:35].strip(), detail[35:].strip()
    if qualifier in ("NPY", "NBE", "NPO", "NBU"):
        # the first one of each kind counts: banks repeat them on continuation records
        entry.extra.setdefault(qualifier, value[:140])
    elif qualifier in ("IPY", "IBE", "IPO", "IBU"):
        # an identifier (an IBAN, a SEPA creditor identifier, a customer number) and its type
        entry.extra.setdefault(qualifier, value)
    elif qualifier == "RCN":
        # the payer's reference (end-to-end id) in 35 characters, then the purpose
        entry.end_to_end_id = clean_reference(first)
        if second:
            entry.extra["purpose"] = second
    elif qualifier == "RUM":
        # the mandate reference, then (from 2009) the sequence type in the second half
        entry.mandate_reference = first[:64] if second.upper() in SEQUENCE_TYPES or not second else value[:64]
        if second.upper() in SEQUENCE_TYPES:
            entry.extra["sequence_type"] = second.upper()
    elif qualifier in ("MOT", "RET"):
        # reason of a reject or return ("RET": unified code, SIT code, label)
        entry.extra[qualifier] = value
        if qualifier == "RET":
            entry.is_reversal = True
        found = REASON_CODE.search(value)
        if found and entry.is_reversal and not entry.reason_code:
            entry.reason_code = found.group(1)
    elif qualifier == "LCS":
        entry.structured_reference = entry.structured_reference or first[:64]
        _text(entry, qualifier, detail, full=False)
    elif qualifier in TEXT_QUALIFIERS:
        # LC2 is the second half of LCC's 140 characters of remittance information
        _text(entry, "LCC" if qualifier == "LC2" else qualifier, detail, full=detail[-1:] not in ("", " "))
    elif qualifier in ("MMO", "FEE"):
        # amount in the original currency / fees: currency, number of decimals, 14 digits
        entry.extra[qualifier] = value
        currency, decimals, digits = detail[0:3], detail[3:4], detail[4:18].strip()
        if currency.isalpha() and decimals.isdigit() and digits.isdigit():
            key = "original" if qualifier == "MMO" else "fee"
            entry.extra[f"{key}_currency"] = currency.upper()
            entry.extra[f"{key}_amount"] = Decimal(int(digits)).scaleb(-int(decimals))
    else:
        entry.extra[qualifier] = value


def _text(entry: Entry, kind: str, field: str, *, full: bool) -> None:
    """One piece of the movement's texts. A piece that fills its whole field was cut by the
    record's length (an invoice number cut in two, as Société Générale cuts LCC/LC2 and
    factoring companies their labels): the next piece of the same text follows it without a
    space."""
    parts = entry.extra.setdefault(TEXTS, [])
    if parts and parts[-1][0] == kind and parts[-1][2]:
        parts[-1][1] += field
        parts[-1][2] = full
    else:
        parts.append([kind, field, full])


def _remittance(parts: list) -> str:
    """The label, then each 05 text once: banks repeat the remittance information in LIB and
    LCC, and LIB may hold only its first 70 characters."""
    label = parts[0][1].strip() if parts and parts[0][0] == "label" else ""
    others = [(text.strip(), full) for _kind, text, full in parts[1 if label else 0:]]
    kept: list[str] = []
    for text, full in others:
        cut_copy = full and any(o != text and o.startswith(text) for o, _full in others)
        if text and text not in kept and not cut_copy:
            kept.append(text)
    return " ".join(t for t in [label, *kept] if t)[:1000]


def _iban(identifier: str) -> str:
    """The IBAN in an identifier field, if it holds one (it may be a creditor identifier)."""
    return iban_or_empty(identifier[:35])


def _finish(entry: Entry, seen: Counter, header: StatementHeader) -> Entry:
    """The texts and the counterparty: the payer of a credit, the beneficiary of a debit; on a
    returned direct debit (a debit) the payer, whose collection came back. The ultimate party
    (NPO / NBU) only when the direct one is missing."""
    entry.remittance_info = _remittance(entry.extra.pop(TEXTS, []))
    if entry.bank_reference or entry.end_to_end_id:
        # Entry numbers are not unique everywhere (a factoring company numbers a whole remittance
        # alike, ATM withdrawals of the same amount can share one): the second identical movement
        # is told apart by its rank, or the natural key would take it for the first.
        key = (header.account_iban, header.account_other_id, entry.booking_date, entry.direction, entry.amount,
               entry.currency, entry.bank_reference, entry.entry_reference, entry.end_to_end_id)
        entry.position = seen[key]
        seen[key] += 1
    names = entry.extra
    payer_side = entry.direction == "CRDT" or entry.is_reversal
    if payer_side:
        entry.counterparty_name = names.get("NPY") or names.get("NPO") or ""
        entry.counterparty_iban = _iban(names.get("IPY", "")) or _iban(names.get("IPO", ""))
        if entry.direction == "CRDT" and not entry.is_reversal:
            # the beneficiary's account the payer typed: a virtual IBAN of the statement's account
            entry.credited_iban = _iban(names.get("IBE", "")).replace(" ", "").upper()
    else:
        entry.counterparty_name = names.get("NBE") or names.get("NBU") or ""
        entry.counterparty_iban = _iban(names.get("IBE", "")) or _iban(names.get("IBU", ""))
    return entry
