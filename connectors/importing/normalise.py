"""Turning one raw row into a clean, typed row, or into row errors (row, column, message)."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from collections.abc import Iterable
from typing import Any, NamedTuple

from django.utils.translation import gettext as _

from collections_app.money import is_known_currency, quantum
from connectors.importing.fields import FIELDS, PAID, field_columns, header_key, is_lines_export

MAX_LENGTHS = {"external_ref": 64, "customer_ref": 64, "name": 140, "email": 254, "phone": 32,
               "description": 255}
_AMOUNT = re.compile(r"-?\d+(\.\d+)?")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ][\d:.+\-Z]*)?")
# Exports often add a midnight time to dates ("04/03/2026 00:00:00").
_DMY_DATE = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
# "20261123" (SAP and flat-file exports), else "23112026".
_COMPACT_DATE = re.compile(r"(\d{8})")
# "23-NOV-2026" (Oracle), "23 nov. 2026", "23 novembre 2026", "Nov 23, 2026".
_NAMED_MONTH_DATE = re.compile(r"(\d{1,2})[ \-./]+([^\W\d_]+)\.?[ \-./]+(\d{4}|\d{2})"
                               r"|([^\W\d_]+)\.? (\d{1,2}),? (\d{4})")
MONTHS = {name: number for number, names in enumerate((
    ("jan", "january", "janv", "janvier"), ("feb", "february", "fev", "fevr", "fevrier"), ("mar", "march", "mars"),
    ("apr", "april", "avr", "avril"), ("may", "mai"), ("jun", "june", "juin"), ("jul", "july", "juil", "juillet"),
    ("aug", "august", "aou", "aout"), ("sep", "sept", "september", "septembre"), ("oct", "october", "octobre"),
    ("nov", "november", "novembre"), ("dec", "december", "decembre")), start=1) for name in names}
# Excel counts days from 1899-12-30; a workbook cell left without a date format shows that count.
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_EXCEL_SERIALS = range(20_000, 80_000)  # 1954..2119
# "1 234,56 EUR", "EUR 1234.56": the code must be the row's currency.
_AMOUNT_CODE = re.compile(r"^\s*([A-Za-z]{3})\s*(?=[-\d])|(?<=[\d\s.,-])\s*([A-Za-z]{3})\s*$")
# "$13.50", "12,50 €", "£80.00": the sign must be one of the row's currency (Invoice Ninja and
# other US tools write "$" in their amounts, whose file has no currency column).
_DOLLAR_CURRENCIES = frozenset({"USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN", "TWD", "ARS", "CLP", "COP", "UYU",
                                "FJD", "BSD", "BBD", "BZD", "BMD", "BND", "KYD", "XCD", "JMD", "LRD", "NAD", "SBD",
                                "SRD", "TTD", "GYD", "DOP", "CUP", "BRL"})
_CURRENCY_SIGNS = {"€": frozenset({"EUR"}), "£": frozenset({"GBP"}), "$": _DOLLAR_CURRENCIES}
# A "Paid" column holding a flag, not an amount: it says nothing of what remains due.
_YES_NO = frozenset({"true", "false", "yes", "no", "y", "n", "oui", "non", "vrai", "faux"})
CURRENCY_ALIASES = {"€": "EUR", "EURO": "EUR", "EUROS": "EUR", "£": "GBP", "CHF.": "CHF", "FRS": "CHF"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_AMOUNT = Decimal("1e12")
_CENT = Decimal("0.01")
_SPACES = str.maketrans("", "", " \u00a0\u202f'\u2019€$£")


class CleanRow(NamedTuple):
    row: int
    external_ref: str
    customer_ref: str
    name: str
    email: str
    phone: str
    amount: Decimal
    currency: str
    issue_date: dt.date
    due_date: dt.date
    description: str
    balance: Decimal | None = None  # what remains due according to the ERP, when the file says


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


class CellError(ValueError):
    pass


def parse_amount(value: Any, decimal_separator: str = "auto") -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    text = str(value).strip().translate(_SPACES)
    if text.endswith("-"):  # "12,50-" as some accounting exports write negatives
        text = "-" + text[:-1]
    elif text.startswith("(") and text.endswith(")"):  # "(12,50)": a spreadsheet's accounting format
        text = "-" + text[1:-1]
    if decimal_separator == ",":
        text = text.replace(".", "").replace(",", ".")
    elif decimal_separator == ".":
        text = text.replace(",", "")
    elif "," in text and "." in text:
        # Whichever comes last is the decimal separator: 1.234,56 and 1,234.56.
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif text.count(",") == 1:
        text = text.replace(",", ".")
    if not _AMOUNT.fullmatch(text):
        raise CellError(_("“%(value)s” is not an amount.") % {"value": value})
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise CellError(_("“%(value)s” is not an amount.") % {"value": value}) from exc


def _year(text: str) -> int:
    return int(text) + 2000 if len(text) == 2 else int(text)


def _month(name: str) -> int:
    month = MONTHS.get(header_key(name))  # lower case, without accents or the abbreviation's dot
    if month is None:
        raise ValueError(name)
    return month


def parse_date(value: Any, date_format: str = "", *, month_first: bool = False) -> dt.date:
    """month_first: 03/04/2026 is March 4th (the file's other dates say so, see month_first_dates)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in _EXCEL_SERIALS:
        return _EXCEL_EPOCH + dt.timedelta(days=value)
    text = str(value).strip()
    try:
        if date_format:
            try:
                return dt.datetime.strptime(text, date_format).date()
            except ValueError:
                # ISO dates cannot be misread, whatever the mapping's format ("2026-03-31" in
                # a file whose mapping says dd/mm/yyyy: the ERP changed its export).
                match = _ISO_DATE.fullmatch(text)
                if match:
                    return dt.date(int(match[1]), int(match[2]), int(match[3]))
                raise
        match = _ISO_DATE.fullmatch(text)
        if match:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        match = _DMY_DATE.fullmatch(text)
        if match:
            if month_first:
                return dt.date(_year(match[3]), int(match[1]), int(match[2]))
            return dt.date(_year(match[3]), int(match[2]), int(match[1]))
        match = _COMPACT_DATE.fullmatch(text)
        if match:
            try:
                return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            except ValueError:
                return dt.date(int(text[4:]), int(text[2:4]), int(text[:2]))
        match = _NAMED_MONTH_DATE.fullmatch(text)
        if match:
            if match[1]:
                return dt.date(_year(match[3]), _month(match[2]), int(match[1]))
            return dt.date(int(match[6]), _month(match[4]), int(match[5]))
    except ValueError:
        pass
    if not date_format and not month_first and (match := _DMY_DATE.fullmatch(text)) and \
            int(match[2]) > 12 >= int(match[1]):
        # 12/31/2026: an export writing the month first, which no file can be guessed to do.
        raise CellError(_("“%(value)s” is not a valid date (expected dd/mm/yyyy): if this file writes the month "
                          "first, give the date format %%m/%%d/%%Y in a column mapping.") % {"value": value})
    raise CellError(_("“%(value)s” is not a valid date (expected %(format)s).")
                    % {"value": value, "format": date_format or "dd/mm/yyyy, yyyy-mm-dd"})


def month_first_dates(texts: Iterable[Any]) -> bool:
    """Whether a file writes its dates month first (12/31/2026, QuickBooks and other US
    exports): some of its n/n/yyyy dates can only be read so, and none only day first."""
    day_first = month_first = False
    for text in texts:
        if isinstance(text, str) and (match := _DMY_DATE.fullmatch(text.strip())):
            day_first = day_first or int(match[1]) > 12
            month_first = month_first or int(match[2]) > 12
    return month_first and not day_first


def _without_currency_code(raw: Any, currency: str) -> tuple[Any, str | None]:
    """ "1 234,56 EUR" -> "1 234,56", or an error when the code (or the sign: "$13.50") is not
    the row's currency."""
    if not isinstance(raw, str):
        return raw, None
    for sign, currencies in _CURRENCY_SIGNS.items():
        if sign in raw and currency not in currencies:
            return raw, _("The amount is written in %(written)s but the row's currency is %(currency)s.") \
                % {"written": sign, "currency": currency}
    if not (raw[0].isalpha() or raw[-1].isalpha()):
        return raw, None
    code = _AMOUNT_CODE.search(raw)
    if code is None:
        return raw, None
    written = (code.group(1) or code.group(2)).upper()
    message = None
    if written != currency:
        message = _("The amount is written in %(written)s but the row's currency is %(currency)s.") \
            % {"written": written, "currency": currency}
    return _AMOUNT_CODE.sub("", raw), message


def _too_precise(value: Decimal, currency: str) -> str | None:
    if value != value.quantize(quantum(currency)):
        return _("Too many decimals for %(currency)s.") % {"currency": currency}
    return None


class Normaliser:
    """Cleans rows of one file. Keeps the invoice numbers seen so far: a number that comes
    back later in the same file is an error on the later row."""

    def __init__(self, *, headers: list[str], column_fields: dict[int, str], default_currency: str,
                 date_format: str = "", decimal_separator: str = "auto", today: dt.date | None = None,
                 month_first: bool = False):
        self.column_fields = column_fields
        self.field_columns = field_columns(column_fields)
        self.headers = headers
        self.default_currency = default_currency
        self.date_format = date_format
        self.month_first = month_first
        self.decimal_separator = decimal_separator
        self.today = today or dt.date.today()
        self.seen: dict[str, int] = {}
        self.has_paid = PAID in self.field_columns and "balance" not in self.field_columns
        self.has_balance = "balance" in self.field_columns or self.has_paid
        # invoice number -> its invoice-level values, in an export with one row per invoice line
        self.invoices: dict[str, tuple] | None = {} if is_lines_export(headers) else None
        self._dates: dict[str, dt.date] = {}
        self._text_columns = [(f, self.field_columns.get(f), FIELDS[f][1], MAX_LENGTHS[f])
                              for f in ("external_ref", "customer_ref", "name", "email", "phone", "description")]

    def column_name(self, field: str) -> str:
        index = self.field_columns.get(field)
        return self.headers[index] if index is not None and index < len(self.headers) else field

    def missing_columns(self) -> list[str]:
        return [f for f, (_label, required) in FIELDS.items() if required and f not in self.field_columns]

    def _cell(self, values: list[Any], field: str) -> Any:
        index = self.field_columns.get(field)
        if index is None or index >= len(values):
            return None
        value = values[index]
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    def _money(self, raw: Any, currency: str) -> Decimal:
        """A money cell, written with or without the row's currency code; CellError otherwise."""
        raw, message = _without_currency_code(raw, currency)
        if message:
            raise CellError(message)
        return parse_amount(raw, self.decimal_separator)

    def _date(self, raw: Any) -> dt.date:
        # Files repeat the same few hundred dates: parse each text once.
        if not isinstance(raw, str):
            return parse_date(raw, self.date_format, month_first=self.month_first)
        cached = self._dates.get(raw)
        if cached is None:
            cached = parse_date(raw, self.date_format, month_first=self.month_first)
            if len(self._dates) < 100_000:
                self._dates[raw] = cached
        return cached

    def clean(self, number: int, values: list[Any]) -> tuple[CleanRow | None, list[RowError]]:
        """Hot loop of a million-row import: written for speed, checks in column order."""
        errors: list[RowError] = []
        width = len(values)
        text: dict[str, str] = {}
        for field, index, required, limit in self._text_columns:
            value = values[index] if index is not None and index < width else None
            if value is None:
                value = ""
            elif isinstance(value, str):
                value = value.strip()
            else:
                value = str(value)
                if value.endswith(".0"):
                    value = value[:-2]  # XLSX numbers used as references
            if not value:
                if required:
                    errors.append(RowError(number, self.column_name(field), _("This field is required.")))
            elif len(value) > limit:
                errors.append(RowError(number, self.column_name(field),
                                       _("At most %(n)s characters.") % {"n": limit}))
            text[field] = value
        email = text["email"]
        if email and not _EMAIL.fullmatch(email):
            errors.append(RowError(number, self.column_name("email"),
                                   _("“%(value)s” is not a valid email address.") % {"value": email}))

        currency = self._cell(values, "currency")
        currency = str(currency).upper() if currency is not None else self.default_currency
        currency = CURRENCY_ALIASES.get(currency, currency)
        known_currency = is_known_currency(currency)
        if not known_currency:
            errors.append(RowError(number, self.column_name("currency"),
                                   _("Unknown currency %(code)s.") % {"code": currency}))

        amount = None
        raw_amount = self._cell(values, "amount")
        if raw_amount is None:
            errors.append(RowError(number, self.column_name("amount"), _("This field is required.")))
        else:
            try:
                amount = self._money(raw_amount, currency)
                if amount <= 0:
                    message = _("The amount must be greater than zero.")
                elif known_currency and (message := _too_precise(amount, currency)):
                    pass
                elif amount >= _MAX_AMOUNT:
                    message = _("The amount is too large.")
                else:
                    message = None
                    amount = amount.quantize(_CENT)
            except CellError as exc:
                message = str(exc)
            if message:
                amount = None
                errors.append(RowError(number, self.column_name("amount"), message))

        balance = None
        raw_balance = self._cell(values, "balance") if self.has_balance else None
        if raw_balance is not None:
            try:
                balance = self._money(raw_balance, currency)
                if balance < 0:
                    message = _("The balance due cannot be negative.")
                elif amount is not None and balance > amount:
                    message = _("The balance due cannot be above the amount.")
                elif known_currency and (message := _too_precise(balance, currency)):
                    pass
                else:
                    message = None
                    balance = balance.quantize(_CENT)
            except CellError as exc:
                message = str(exc)
            if message:
                balance = None
                errors.append(RowError(number, self.column_name("balance"), message))
        elif self.has_paid and amount is not None and (raw_paid := self._cell(values, PAID)) is not None \
                and not (isinstance(raw_paid, str) and raw_paid.lower() in _YES_NO):
            # What was paid, next to the amount: what remains due is the difference.
            try:
                paid = self._money(raw_paid, currency)
                if paid < 0:
                    message = _("The amount paid cannot be negative.")
                elif paid > amount:
                    message = _("The amount paid cannot be above the amount.")
                elif known_currency and (message := _too_precise(paid, currency)):
                    pass
                else:
                    message = None
                    balance = (amount - paid).quantize(_CENT)
            except CellError as exc:
                message = str(exc)
            if message:
                errors.append(RowError(number, self.column_name(PAID), message))

        dates: dict[str, dt.date | None] = {}
        for field in ("issue_date", "due_date"):
            raw = self._cell(values, field)
            if raw is None:
                dates[field] = self.today if field == "issue_date" else None
                if field == "due_date":
                    errors.append(RowError(number, self.column_name(field), _("This field is required.")))
                continue
            try:
                dates[field] = self._date(raw)
            except CellError as exc:
                dates[field] = None
                errors.append(RowError(number, self.column_name(field), str(exc)))
        issue_date, due_date = dates["issue_date"], dates["due_date"]
        if issue_date and due_date and due_date < issue_date:
            errors.append(RowError(number, self.column_name("due_date"),
                                   _("The due date cannot be before the issue date.")))

        ref = text["external_ref"]
        if ref:
            first = self.seen.get(ref)
            invoice = None if self.invoices is None else (
                text["customer_ref"], text["name"], amount, currency, issue_date, due_date, balance)
            if first is not None:
                if self.invoices is not None and not errors and self.invoices.get(ref) == invoice:
                    return None, []  # a further line of the invoice of row `first`
                errors.append(RowError(number, self.column_name("external_ref"),
                                       _("Invoice number %(ref)s is already on row %(row)s.")
                                       % {"ref": ref, "row": first}))
            elif not errors:
                self.seen[ref] = number
                if self.invoices is not None:
                    self.invoices[ref] = invoice
        if errors:
            return None, errors
        return CleanRow(number, ref, text["customer_ref"], text["name"], email, text["phone"], amount,
                        currency, issue_date, due_date, text["description"], balance), []
