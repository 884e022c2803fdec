"""Property tests of the cell parsers: whatever the ERP writes, a value either parses to the
right thing or is a clear CellError, never a wrong amount or date."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.importing.normalise import CellError, parse_amount, parse_date
from connectors.importing.reader import detect_delimiter, detect_encoding

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999999.99"), places=2)


def french(value: Decimal) -> str:
    whole, cents = f"{value:.2f}".split(".")
    groups = f"{int(whole):,}".replace(",", "\u202f")
    return f"{groups},{cents}"


@given(amounts)
def test_amounts_in_every_notation(value):
    assert parse_amount(f"{value:.2f}") == value
    assert parse_amount(french(value)) == value
    assert parse_amount(french(value), ",") == value
    assert parse_amount(f"{value:,.2f}") == value  # 1,234.56
    assert parse_amount(f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", "."), ",") == value


@given(st.text(max_size=12))
def test_amount_parser_never_returns_garbage(text):
    try:
        value = parse_amount(text)
    except CellError:
        return
    assert isinstance(value, Decimal) and value.is_finite()


@given(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2099, 12, 31)))
def test_dates_french_and_iso(day):
    assert parse_date(day.strftime("%d/%m/%Y")) == day
    assert parse_date(day.isoformat()) == day
    assert parse_date(day.strftime("%d.%m.%Y")) == day
    assert parse_date(day.strftime("%m-%d-%Y"), "%m-%d-%Y") == day
    assert parse_date(day.strftime("%d/%m/%Y 00:00:00")) == day
    assert parse_date(day.strftime("%d/%m/%Y 00:00")) == day


@pytest.mark.parametrize("text", ["31/02/2026", "2026-13-01", "12/31/2026", "demain", ""])
def test_bad_dates(text):
    with pytest.raises(CellError):
        parse_date(text)


def test_encoding_and_delimiter_detection():
    text = "numéro;montant\r\nFA-1;12,50 €\r\n"
    assert detect_encoding(text.encode("cp1252")) == "cp1252"
    assert detect_encoding(text.encode("utf-8")) == "utf-8"
    assert detect_encoding(text.encode("utf-8-sig")) == "utf-8-sig"
    assert detect_delimiter(text) == ";"
    assert detect_delimiter('a,"b;c",d\n') == ","
    assert detect_delimiter("a\tb\tc\n") == "\t"
