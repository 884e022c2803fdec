"""SWIFT MT940 with the `mt-940` package, plus the structured :86: variants:

- German (DFÜ-Abkommen) `?20…?34` sub-fields with SEPA keywords (EREF+, SVWZ+, …), decoded by
  mt-940's transaction_details_post_processor;
- Dutch and Belgian slash-keyed details (`/EREF/…/NAME/…/REMI/…`, ING's `/CNTP/iban/bic/name/`);
- anything else is kept as free remittance text.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import IO

import mt940
import mt940.tags
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from mt940.models import Transactions

from reconciliation.parsers.base import (
    IBAN_LIKE, Entry, StatementHeader, StatementParseError, clean_reference, french_iban, iban_or_empty,
)

# German GVC codes of returned direct debits and returned transfers.
GERMAN_RETURN_CODES = {"108", "109", "159", "184", "190", "191"}
SWIFT_RETURN_TYPES = {"NRTI", "FRTI", "SRTI", "NRET", "FRET"}
ISO_REASON_RE = re.compile(
    r"\b(AC0[1-9]|AC1[34]|AG0[1-2]|AM0[1-9]|BE0[1-5]|CNOR|DNOR|FF0[1-5]|MD0[1-7]|MS0[23]|RC01|RR0[1-4]|SL01"
    r"|FOCR|DUPL|TECH|FRAD|CUST|RUTA|NARR)\b")
SLASH_KEYS = ("EREF", "NAME", "IBAN", "BIC", "REMI", "CNTP", "ORDP", "BENM", "RTRN", "MARF", "CSID", "PURP", "BUSP",
              "TRTP", "ADDR", "TRCD", "PREF", "KREF", "ISDT", "SVCL", "RTYP", "OBK", "ID", "ULTD", "ULTC")
SLASH_RE = re.compile(r"/(" + "|".join(SLASH_KEYS) + r")/")


def looks_like(text: str) -> bool:
    """MT940 (statement: opening balance :60F: or :60M:) or MT942 (intraday report: floor limit
    :34F: and time :13D: instead of balances)."""
    return ":20:" in text and ":25:" in text and (
        ":60F:" in text or ":60M:" in text or (":34F:" in text and ":13D:" in text))


# Countries whose banks write their files in a Central European code page (Windows-1250 or
# ISO 8859-2), where cp1252 would turn "SPÓŁKA" into "SPÓ£KA" and "URZĄD" into "URZ¡D".
CENTRAL_EUROPEAN = {"PL", "CZ", "SK", "HU", "SI", "HR", "RO", "RS", "BA", "AL"}
ACCOUNT_COUNTRY_RE = re.compile(rb"^:25:(?:[A-Z0-9]{8,11}/|/+)?([A-Z]{2})\d{2}", re.M)
CENTRAL_EUROPEAN_LETTERS = set("ąćęłńśźżĄĆĘŁŃŚŹŻčďěňřšťůžČĎĚŇŘŠŤŮŽőűŐŰăîșțşţĂÎȘȚŞŢ")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    country = ACCOUNT_COUNTRY_RE.search(data[:4096])
    if country and country[1].decode() in CENTRAL_EUROPEAN:
        # Windows-1250 and ISO 8859-2 share most letters but not ą, ś, ź, š, ž…: the code page
        # that gives more of the region's letters is the file's (Windows-1250 when even).
        decoded = [data.decode(encoding, errors="replace") for encoding in ("cp1250", "iso-8859-2")]
        scores = [sum(char in CENTRAL_EUROPEAN_LETTERS for char in text) for text in decoded]
        return decoded[1] if scores[1] > scores[0] else decoded[0]
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _parse_slash_details(text: str) -> dict[str, str]:
    """Slash-keyed :86: details into a dict. ING's /CNTP/ holds iban/bic/name/city."""
    parts = SLASH_RE.split(text)
    if len(parts) < 3:
        return {}
    found: dict[str, str] = {}
    for key, value in zip(parts[1::2], parts[2::2]):
        value = value.strip().strip("/").strip()
        if key == "CNTP":
            bits = value.split("/")
            found.setdefault("IBAN", bits[0] if bits else "")
            if len(bits) > 2:
                found.setdefault("NAME", bits[2])
            continue
        if key in ("ORDP", "BENM") and "NAME" not in found:
            name = re.sub(r"^/?(ID|NAME)/", "", value)
            found["NAME"] = name.split("/")[-1] if "/" in name else name
            continue
        if key == "REMI":
            # ING: /REMI/USTD//text/ or /REMI/STRD/CUR/reference/
            value = re.sub(r"^(USTD|STRD)/+(CUR/+)?", "", value)
        if value:
            found[key] = f"{found[key]} {value}" if key in found and key == "REMI" else found.get(key) or value
    return found


# Polish banks' :86: (PKO BP, Pekao, ING Bank Śląski, Santander): the German sub-fields with
# "~", "^" or "<" instead of "?": "020~00152~20title…~25~30bank~31account~32name~33…~38IBAN~60…".
# Empty sub-fields hold a 0xFF byte ("˙" or "ÿ", depending on the code page).
SUBFIELDS_RE = re.compile(r"^\s*\d{3}\s*([~^<])\d\d")
SUBFIELD_WIDTH = 27  # a sub-field this long was cut where its width ran out


def _polish_subfields(text: str) -> dict[str, str]:
    """Sub-fields of a Polish :86: by number ("20", "32"…), placeholders dropped; {} for other texts."""
    found = SUBFIELDS_RE.match(text)
    if not found:
        return {}
    separator = re.escape(found[1])
    parts = re.split(rf"{separator}(\d\d)", text)
    fields = {"": parts[0].strip()}
    for key, value in zip(parts[1::2], parts[2::2]):
        value = value.strip().strip("\u02d9\xff").strip()
        if value:
            fields[key] = value
    return fields


def _join_subfields(fields: dict[str, str], keys: list[str]) -> str:
    joined = previous = ""
    for key in keys:
        if value := fields.get(key):
            separator = "" if not joined or len(previous) >= SUBFIELD_WIDTH else " "
            joined += separator + value
            previous = value
    return joined


# mBank: "911 TRANSAKCJA IPH; ID IPH: …; Z RACH.: 04105014…; OD: name address; TYT.: invoice; TNR: …"
# ("na rach.:", "dla:" and lower case in CompanyNet).
MBANK_RE = re.compile(r"^\s*\d{3} [^;]*;.*\b(?:RACH\.|OD|DO|DLA|TYT\.):", re.I | re.S)
MBANK_KEY_RE = re.compile(r"^(Z RACH\.|NA RACH\.|OD|DO|DLA|TYT\.)\s*:\s*(.*)$", re.I | re.S)


def _mbank_fields(text: str) -> dict[str, str]:
    if not MBANK_RE.match(text):
        return {}
    found: dict[str, str] = {}
    for part in text.split(";"):
        if key_value := MBANK_KEY_RE.match(part.strip()):
            key = key_value[1].upper()
            key = "ACCOUNT" if key.endswith("RACH.") else "TITLE" if key == "TYT." else "NAME"
            found.setdefault(key, key_value[2].strip())
    return found


def _polish_iban(account: str) -> str:
    """A Polish account number (NRB, 26 digits, its first two the IBAN's check digits) as IBAN."""
    digits = re.sub(r"[\s-]", "", account)
    if re.fullmatch(r"\d{26}", digits):
        return f"PL{digits}"
    return iban_or_empty(digits) or (digits if IBAN_LIKE.fullmatch(digits) else "")


# Komercijalna banka (North Macedonia): "/BENM/account" or "/ORDP/account", then a line each
# for the name, the references ("debtor's//creditor's") and the purpose.
POSITIONAL_SLASH_RE = re.compile(r"^/(ORDP|BENM)/([^/\n]*)\n/([^\n]*)\n/([^\n]*)\n/(.*)$", re.S)


SWIFT_LINE = 65  # :86: is up to 6 lines of 65 characters
FIRST_LINE = SWIFT_LINE - len(":86:")  # the tag takes 4 of the first line's 65


def _is_cut(line: str, first: bool) -> bool:
    # A first line of exactly 61 characters is full in SWIFT-conformant files (ING, ABN AMRO);
    # some exports put 65 characters after the tag, where 62 to 64 mean the line ended early.
    return len(line) >= SWIFT_LINE or (first and len(line) == FIRST_LINE)


# A field with a line longer than this was not cut at 65 characters (mBank's CompanyNet, bunq
# write a sentence a line): its line breaks are all between words.
UNWRAPPED_LINE = SWIFT_LINE + 5


def unwrap(text: str) -> str:
    """:86: lines joined back. A full line was cut where the 65 characters ran out, often inside
    a word or a key (ING: "/ERE" + "F/…"): it is joined as is; a shorter one ended on purpose.
    In a field with longer lines, nothing was cut: every line break is a space."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if any(len(line) > UNWRAPPED_LINE for line in lines):
        return " ".join(line.strip() for line in lines if line.strip())
    joined = lines[0]
    for index, (previous, line) in enumerate(zip(lines, lines[1:])):
        joined = joined + line if _is_cut(previous, index == 0) else f"{joined.rstrip()} {line.lstrip()}"
    return joined.strip()


# Tags after which an :86: is the statement's own information to the account owner (ING's
# "/NAME/…//SUM/…", totals), not a continuation of the last transaction's details.
BALANCE_TAG_RE = re.compile(r"^:(62[FM]|64|65):")
TAG_RE = re.compile(r"^:\d\d[A-Z]?:")


def _drop_statement_information(text: str) -> str:
    kept: list[str] = []
    after_balance = skipping = False
    for line in text.split("\n"):
        if TAG_RE.match(line):
            skipping = after_balance and line.startswith(":86:")
            after_balance = bool(BALANCE_TAG_RE.match(line)) or (after_balance and skipping)
        elif line.startswith("-"):
            skipping = after_balance = False
            line = "-"  # "-XXX" and such trailers end a statement too
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


BALANCE_RE = re.compile(r"^:6[0245][FM]?:[CD]\d{6}([A-Z]{3})?(?=[\d,])")
CLOSING_TAG_RE = re.compile(r"^:62[FM]?:")
AVAILABLE_TAG_RE = re.compile(r"^:6[45][FM]?:")


def _check_lines(text: str) -> str:
    """Line by line, before mt-940 sees the text, so that errors can name the file's line:
    a balance without its currency (":62M:C020315105000,00", from the DFÜ examples) gets the
    statement's currency, instead of "105" and 0,00; a :61: outside a statement (after a
    closing balance, with no new :20:) is a truncated or pasted-together file. An available
    balance (:64:, :65:) that cannot be read (Oldenburgische Landesbank's ":65F:Dnullnull7414,3")
    is dropped: it is not used, and the booked movements are fine."""
    lines = text.split("\n")
    currency = ""
    in_statement = False
    for number, line in enumerate(lines, start=1):
        if line.startswith(":20:"):
            in_statement = True
        elif line.startswith(":61:") and not in_statement:
            raise StatementParseError("transaction (:61:) outside a statement: no :20: since the last "
                                      "closing balance", line=number)
        elif AVAILABLE_TAG_RE.match(line) and not BALANCE_RE.match(line):
            lines[number - 1] = ""
        elif found := BALANCE_RE.match(line):
            if found[1]:
                currency = found[1]
            elif currency:
                lines[number - 1] = f"{line[:found.end()]}{currency}{line[found.end():]}"
            else:
                raise StatementParseError("balance without a currency", line=number)
            if CLOSING_TAG_RE.match(line):
                in_statement = False
    return "\n".join(lines)


def _error_line(text: str, value: object) -> int | None:
    """The line of the file where the value mt-940 could not read starts."""
    first = str(value).strip().split("\n")[0]
    for number, line in enumerate(text.split("\n"), start=1):
        if first and first in line:
            return number
    return None


class _Statement(mt940.tags.Statement):
    """:61: as banks write it, beyond mt-940's pattern: ASN puts the 18-character counter-IBAN
    in the 16-character reference, then the name on the next line ("NOVBNL47INGB…\\nname");
    Deutsche Bank and Commerzbank put a space between amount and type ("D12,35 NRTI"); solarisBank's
    clients (Penta) write no type at all, the reference straight after the amount ("D20,00NONREF"),
    which must not be read as type "NONR" and reference "EF".
    mt-940 finds a tag's processors (30 February value dates…) by its class name: keep it."""

    pattern = r"""^
    (?P<year>\d{2})(?P<month>\d{2})(?P<day>\d{2})
    (?P<entry_month>\d{2}|\s{2})?
    (?P<entry_day>\d{2}|\s{2})?
    (?P<status>R?[DC])
    (?P<funds_code>[A-Z])?
    [\n ]?
    (?P<amount>[\d,]{1,15})
    \ ?
    (?:(?!NONREF|NOTPROVIDED)(?P<id>[A-Z][A-Z0-9 ]{3}))?
    (?P<customer_reference>((?!//)[^\n]){0,16}|((?!//)[^\n]){17,34}(?=\n|$))
    (//(?P<bank_reference>.{0,23}))?
    (\n?(?P<extra_details>.*))?
    $"""

    def __call__(self, transactions, value):
        data = super().__call__(transactions, value)
        # mt-940 starts a new transaction only when the previous one has a type: without it
        # (Zenith Bank writes none) every :61: would be merged into the first.
        data["id"] = data.get("id") or " "
        return data


class _StatementNumber(mt940.tags.StatementNumber):
    """Zenith Bank leaves the statement number blank: ":28C: /1"."""

    pattern = r"""\ *(?P<statement_number>\d{0,5})(?:/?(?P<sequence_number>\d{1,5}))?$"""


TAGS = {61: _Statement(), 28: _StatementNumber()}


def _to_date(value) -> dt.date | None:
    if value is None:
        return None
    return dt.date(value.year, value.month, value.day)


BLZ_ACCOUNT_RE = re.compile(r"^(\d{8})/(\d{1,10})(?:EUR)?$")
AUSTRIAN_BLZ_ACCOUNT_RE = re.compile(r"^AT(\d{5})/(\d{1,11})(?:/?EUR)?$")
FRENCH_RIB_RE = re.compile(r"^(\d{5})(\d{5})([0-9A-Z]{11})(\d{2})(?:EUR)?$")
BIC_PREFIX_RE = re.compile(r"^([A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)/")
ACCOUNT_CURRENCIES = {"EUR", "USD", "GBP", "CHF", "PLN", "CZK", "HUF", "RON", "BGN", "SEK", "NOK", "DKK", "JPY", "CAD"}
IBAN_CURRENCY_RE = re.compile(r"^([A-Z]{2}\d{2}[A-Z0-9]{10,30}?)/?([A-Z]{3})?$")


def _account(identification: str) -> tuple[str, str, str]:
    """:25: is an IBAN (maybe followed by the currency), a German BLZ/account number, a French
    RIB, or the bank's own number. The first three give the IBAN (so the statement finds the
    account configured by its IBAN); the bank's own form is kept next to it. Banks also write
    "/PL44…" (PKO BP), the BIC before the IBAN ("BILLLULLXXX/LU54…", Luxembourg's BIL and
    Raiffeisen) and Austria's bank code with its account ("//AT39364/12345678912/EUR",
    Raiffeisen Kärnten). Returns the IBAN, the bank's own form and the BIC."""
    compact = identification.replace(" ", "").upper().lstrip("/")
    bic = ""
    if found := BIC_PREFIX_RE.match(compact):
        bic, compact = found[1], compact[found.end():]
    if iban_match := IBAN_CURRENCY_RE.match(compact):
        if iban_match[2] and iban_match[2] not in ACCOUNT_CURRENCIES:  # letters ending the IBAN itself
            return compact.replace("/", ""), "", bic
        return iban_match[1], "", bic
    other = identification.strip()[:64]
    try:
        if found := BLZ_ACCOUNT_RE.match(compact):
            return IBAN.generate("DE", bank_code=found[1], account_code=found[2]).compact, other, bic
        if found := AUSTRIAN_BLZ_ACCOUNT_RE.match(compact):
            return IBAN.generate("AT", bank_code=found[1], account_code=found[2]).compact, other, bic
        if found := FRENCH_RIB_RE.match(re.sub(r"[/-]", "", compact)):
            iban = french_iban(found[1], found[2], found[3])
            if iban and iban.endswith(found[4]):  # the RIB key agrees
                return iban, other, bic
    except SchwiftyException:
        pass
    return "", other, bic


def parse(stream: IO[bytes]) -> Iterator[StatementHeader | Entry]:
    text = _decode(stream.read()).replace("\r\n", "\n")
    if not looks_like(text):
        raise StatementParseError("not an MT940 statement nor an MT942 report (no :20:, :25: and :60F: or "
                                  ":34F: tags)")
    original = text
    text = _check_lines(text)
    # Drop SWIFT envelope blocks ({1:…}{2:…}{3:…}{4: … -}{5:…}) that some banks leave around the text.
    # Blocks may nest one level ({3:{108:REF}}); the trailer {5:{CHK:…}} may follow "-}".
    text = re.sub(r"\{[1-35]:(?:[^{}]|\{[^{}]*\})*\}|\{4:|^-\}", "", text, flags=re.M)
    text = _drop_statement_information(text)
    try:
        statements = mt940.parse_statements(text, tags=TAGS, options=mt940.Options.all())
    except RuntimeError as exc:  # mt-940's "Unable to parse <tag> from <value>"
        if len(exc.args) == 3 and isinstance(exc.args[1], mt940.tags.Tag):
            tag, value = exc.args[1], str(exc.args[2])
            raise StatementParseError(f"malformed MT940: cannot read :{tag.id}: {(value.splitlines() or [''])[0]!r}",
                                      line=_error_line(original, value)) from None
        raise StatementParseError(f"malformed MT940: {exc}") from None
    except Exception as exc:  # mt-940 raises plain exceptions on impossible dates and such
        raise StatementParseError(f"malformed MT940: {exc}") from None
    number = 0
    for index, statement in enumerate(statements):
        header = _header(statement, index)
        if not header.account_iban and not header.account_other_id:
            if not statement.transactions:
                continue
            raise StatementParseError(f"MT940 statement {index + 1} has no account (:25:)")
        yield header
        for tx in statement.transactions:
            number += 1
            yield _entry(tx.data, header, number)
        header.final = True
        yield header


def _balance(statement: Transactions, *keys: str) -> tuple[Decimal | None, dt.date | None, str]:
    for key in keys:
        balance = statement.data.get(key)
        if balance is not None:
            return Decimal(str(balance.amount.amount)), _to_date(balance.date), balance.amount.currency or ""
    return None, None, ""


def _header(statement: Transactions, index: int) -> StatementHeader:
    data = statement.data
    iban, other, bic = _account(str(data.get("account_identification") or ""))
    opening, opening_date, currency = _balance(statement, "final_opening_balance", "opening_balance",
                                               "intermediate_opening_balance")
    closing, closing_date, closing_currency = _balance(statement, "final_closing_balance", "closing_balance",
                                                       "intermediate_closing_balance")
    number = str(data.get("statement_number") or "")
    sequence = str(data.get("sequence_number") or "")
    # An MT942 intraday report has no balances; the day's MT940 repeats its movements, which the
    # natural key counts once (their :61: references are the same).
    limits = [value for key, value in data.items() if key.endswith("floor_limit")]
    report = opening is None and closing is None and bool(limits)
    if report and not currency:
        currency = limits[0].currency or ""
    moment = data.get("date") if report else None  # :13D:, when the report was made
    created_at = None
    if isinstance(moment, dt.datetime):
        offset = moment.utcoffset()
        created_at = dt.datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                                 tzinfo=dt.timezone(offset) if offset is not None else dt.UTC)
    return StatementHeader(
        format="mt940", version="MT942" if report else "MT940", index=index, statement_id=str(data.get("transaction_reference") or "")[:64],
        sequence_number=f"{number}/{sequence}" if sequence else number, account_iban=iban, account_other_id=other,
        account_bic=bic,
        currency=(currency or closing_currency or statement.currency or "").upper(), from_date=opening_date,
        to_date=closing_date or (created_at.date() if created_at else None), opening_balance=opening,
        closing_balance=closing, created_at=created_at,
    )


def _entry(data: dict, header: StatementHeader, number: int) -> Entry:
    amount_obj = data.get("amount")
    if amount_obj is None or data.get("date") is None:
        raise StatementParseError("transaction without amount or date (:61:)", entry=number)
    signed = Decimal(str(amount_obj.amount))
    status = str(data.get("status") or "").upper()
    # RC is the reversal of a credit, so a debit; RD the reversal of a debit, so a credit.
    direction = "DBIT" if status in ("D", "RC") else "CRDT"
    value_date = _to_date(data.get("date"))
    booking_date = _to_date(data.get("entry_date")) or value_date
    details_raw = unwrap(str(data.get("transaction_details") or ""))
    tx_type = str(data.get("id") or "").strip()
    # "KREF+" in :61: says the reference is in :86:'s KREF, which mt-940 appends on a new line.
    customer_ref = clean_reference(str(data.get("customer_reference") or "").split("\n")[-1])
    bank_ref = clean_reference(data.get("bank_reference"))
    entry = Entry(
        booking_date=booking_date, value_date=value_date, amount=abs(signed), direction=direction,
        currency=(amount_obj.currency or header.currency or "").upper(), bank_reference=bank_ref,
        entry_reference=customer_ref, bank_transaction_code=tx_type,
        is_reversal=status.startswith("R") or tx_type in SWIFT_RETURN_TYPES,
    )
    if data.get("posting_text") is not None or data.get("transaction_code") is not None:
        # German structured :86: (decoded by mt-940)
        gvc = str(data.get("transaction_code") or "")
        entry.bank_transaction_code = gvc or tx_type
        entry.end_to_end_id = clean_reference(data.get("end_to_end_reference"))
        entry.mandate_reference = (data.get("additional_position_reference") or "").strip()[:64]
        entry.counterparty_name = (data.get("applicant_name") or "")[:140]
        entry.counterparty_iban = (data.get("applicant_iban") or data.get("gvc_applicant_iban") or "")[:64]
        entry.remittance_info = (data.get("purpose") or "")[:1000]
        entry.is_reversal = entry.is_reversal or gvc in GERMAN_RETURN_CODES
    elif subfields := _polish_subfields(details_raw):
        entry.remittance_info = _join_subfields(subfields, ["20", "21", "22", "23", "24", "25", "26", "27", "28", "29",
                                                            "60", "61", "62", "63"])[:1000]
        entry.counterparty_name = _join_subfields(subfields, ["32", "33"])[:140]
        iban = subfields.get("38", "").replace(" ", "").upper()
        bank_code, account_code = subfields.get("30", ""), subfields.get("31", "")
        if not iban and re.fullmatch(r"\d{8}", bank_code) and re.fullmatch(r"\d{16}", account_code):
            try:  # a Polish bank's sort code and account number, without the check digits
                iban = IBAN.generate("PL", bank_code=bank_code, account_code=account_code).compact
            except SchwiftyException:
                iban = ""
        entry.counterparty_iban = iban[:64] if IBAN_LIKE.fullmatch(iban) else ""
        entry.remittance_info = entry.remittance_info or subfields.get("00", "")[:1000]
    elif mbank := _mbank_fields(details_raw):
        entry.counterparty_name = mbank.get("NAME", "")[:140]
        entry.counterparty_iban = _polish_iban(mbank.get("ACCOUNT", ""))[:64]
        entry.remittance_info = mbank.get("TITLE", "")[:1000]
    elif positional := POSITIONAL_SLASH_RE.match(str(data.get("transaction_details") or "").strip()):
        entry.counterparty_iban = iban_or_empty(positional[2])
        entry.counterparty_name = positional[3].strip()[:140]
        references = positional[4].strip()
        purpose = " ".join(positional[5].split())
        if references.strip("/0 ") and references.upper() != "EMPTY/":
            purpose = f"{purpose} {references}"
        entry.remittance_info = purpose[:1000]
    else:
        fields = _parse_slash_details(details_raw)
        if fields:
            entry.end_to_end_id = clean_reference(fields.get("EREF"))
            entry.counterparty_name = fields.get("NAME", "")[:140]
            entry.counterparty_iban = fields.get("IBAN", "")[:64]
            entry.remittance_info = fields.get("REMI", "")[:1000]
            if fields.get("RTRN"):
                entry.is_reversal = True
                entry.reason_code = fields["RTRN"].split("/")[0].strip()[:8]
        elif not details_raw and data.get("non_swift_text"):
            # DFÜ's :NS: after :61: (Hungarian and old German exports): 01-14 purpose, 15-16 name.
            entry.remittance_info = " ".join(
                data[key].strip() for n in range(1, 15) if data.get(key := f"non_swift_{n:02d}"))[:1000]
            entry.counterparty_name = "".join(data.get(f"non_swift_{n}") or "" for n in (15, 16)).strip()[:140]
        else:
            entry.remittance_info = details_raw[:1000]
    if not entry.counterparty_iban:
        # Rabobank writes the counter-IBAN on the :61:'s second line, ASN in its reference field.
        entry.counterparty_iban = iban_or_empty(data.get("extra_details")) or iban_or_empty(
            data.get("customer_reference"))
    if entry.is_reversal and not entry.reason_code:
        found = ISO_REASON_RE.search(f"{details_raw} {entry.remittance_info} {data.get('posting_text') or ''}")
        entry.reason_code = found.group(1) if found else ""
    if not entry.remittance_info:
        entry.remittance_info = details_raw[:1000]
    return entry
