"""Property tests of the cell parsers: whatever the ERP writes, a value either parses to the
right thing or is a clear CellError, never a wrong amount or date."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.importing.fields import resolve_headers
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
    # negatives as accounting exports and spreadsheets write them
    assert parse_amount(f"{french(value)}-") == parse_amount(f"({french(value)})") == -value


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
    assert parse_date(day.isoformat(), "%m-%d-%Y") == day  # ISO cannot be misread
    assert parse_date(day.strftime("%d/%m/%Y 00:00:00")) == day
    assert parse_date(day.strftime("%d/%m/%Y 00:00")) == day


@given(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2099, 12, 31)))
def test_dates_as_flat_files_oracle_and_excel_write_them(day):
    assert parse_date(day.strftime("%Y%m%d")) == day  # SAP, fixed-width exports
    assert parse_date(day.strftime("%d%m%Y")) == day
    assert parse_date(day.strftime("%d-%b-%Y").upper()) == day  # Oracle: 23-NOV-2026
    assert parse_date(day.strftime("%b %d, %Y")) == day
    assert parse_date((day - dt.date(1899, 12, 30)).days) == day  # a workbook cell without date format


@pytest.mark.parametrize("text, day", [("23 nov. 2026", dt.date(2026, 11, 23)), ("3 févr. 2026", dt.date(2026, 2, 3)),
                                       ("15 août 2026", dt.date(2026, 8, 15)), ("1 Janvier 26", dt.date(2026, 1, 1)),
                                       ("23 décembre 2026", dt.date(2026, 12, 23))])
def test_french_month_names(text, day):
    assert parse_date(text) == day


def test_a_month_first_date_says_how_to_read_the_file(settings):
    settings.LANGUAGE_CODE = "en"
    with pytest.raises(CellError, match="give the date format %m/%d/%Y in a column mapping"):
        parse_date("12/31/2026")


@pytest.mark.parametrize("text", ["31/02/2026", "2026-13-01", "12/31/2026", "demain", "", "31 foo 2026", "46349",
                                  "20261332"])
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


WESTERN_TEXTS = [
    "Numéro;Montant TTC;Date échéance\r\nFA-1;12,50 €;01/12/2026\r\n",
    "NUMERO;CLIENT;ÉCHÉANCE;MONTANT\r\nFA-1;CAFÉ ZOÉ;01/12/2026;12,50\r\n",
    "ref;montant\r\nFA-1;12,50 €\r\nFA-2;3,00 €\r\n",
    "Facture payable à 30 jours;l’échéance\r\n",
    "Client;Ölwerk GmbH;Straße;Zürich;Ærø;Øresund;Málaga;São Paulo;Françoise\r\n",
    "Nom;Total\r\nMüller;12\r\nGarçon;13\r\nœuvre;14\r\n",
    "Libellé;Montant\r\nRèglement n°12 à l'ordre de M. Lefèvre;12,00\r\n",
]


def _writable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:  # the euro sign, "œ" and "’" are not in every code page
        return False
    return True


@pytest.mark.parametrize("text, encoding", [(text, encoding) for text in WESTERN_TEXTS
                                            for encoding in ("cp1252", "mac_roman", "cp850", "latin_1")
                                            if _writable(text, encoding)])
def test_eight_bit_code_pages_are_told_apart(text, encoding):
    # Excel writes Windows-1252 ("CSV"), Mac Roman ("CSV (Macintosh)") or code page 850
    # ("CSV (MS-DOS)"); Latin-1 text reads the same as Windows-1252.
    data = text.encode(encoding)
    assert data.decode(detect_encoding(data)) == text


def test_delimiter_is_not_decided_by_a_title_line_or_comma_decimals():
    titled = ("Balance âgée clients, arrêtée au 23/11/2026\n\n"
              "Pièce;Client;Montant;Échéance\nF1;Dupont, SA;12,50;01/12/2026\nF2;Durand;1,5;02/12/2026\n")
    assert detect_delimiter(titled) == ";"
    assert detect_delimiter('ref,name,amount\nF1,"Dupont; SA",12.50\nF2,Durand,3\n') == ","
    assert detect_delimiter("ref|name|amount\nF1|Dupont, SA|12.50\n") == "|"


def test_a_unit_after_a_header_name_is_left_out():
    columns = resolve_headers(["N° facture", "Code client", "Nom", "Montant TTC (EUR)", "Amount due in EUR",
                               "Échéance", "Montant devise"])
    assert columns == {0: "external_ref", 1: "customer_ref", 2: "name", 3: "amount", 4: "balance",
                       5: "due_date"}


def test_columns_that_look_like_a_field_but_mean_something_else_are_not_read():
    # The customer's own reference (Dolibarr's "Réf. client"), a sales ledger account (Xero),
    # amounts before tax or already paid, and Odoo's amounts in the company's currency.
    headers = ["Réf. facture", "Réf. client", "Raison sociale", "AccountCode", "Montant HT", "Déjà réglé",
               "Amount Paid", "Total Signed", "Amount Due Signed", "Subtotal", "Date échéance"]
    assert resolve_headers(headers) == {0: "external_ref", 2: "name", 10: "due_date"}
    # a number and a reference: the number is the invoice's
    assert resolve_headers(["Reference", "Number", "Partner", "Total", "Due Date"])[1] == "external_ref"
    assert resolve_headers(["Référence", "Numéro", "Partenaire", "Total", "Échéance"])[1] == "external_ref"
    # a time zone after a date header is left out, like a currency unit
    assert resolve_headers(["Number", "Customer Name", "Total", "Date (UTC)", "Due Date (UTC)"])[4] == "due_date"


def test_collection_agency_and_cegid_headers():
    agency = ["Dossier", "Débiteur", "Réf. créance", "Date créance", "Exigibilité", "Principal", "Devise",
              "Téléphone", "Email"]
    assert resolve_headers(agency) == {0: "customer_ref", 1: "name", 2: "external_ref", 3: "issue_date",
                                       4: "due_date", 5: "amount", 6: "currency", 7: "phone", 8: "email"}
    cegid = ["Auxiliaire", "Libellé auxiliaire", "Référence interne", "Date comptable", "Date d'échéance",
             "Montant", "Devise"]
    assert resolve_headers(cegid) == {0: "customer_ref", 1: "name", 2: "external_ref", 3: "issue_date",
                                      4: "due_date", 5: "amount", 6: "currency"}
    assert resolve_headers(["N°", "Client", "Échéance", "Montant", "Solde ouvert"])[4] == "balance"


def test_the_documented_default_mapping_is_the_one_used():
    from pathlib import Path

    from connectors.importing.fields import DEFAULT_HEADERS

    table = {}
    for line in (Path(__file__).parents[2] / "docs" / "connectors.md").read_text().splitlines():
        if line.startswith("| `") and "|" in line[3:]:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            field = cells[0].split("`")[1]
            table[field] = [alias.strip() for alias in cells[2].split(" (")[0].split(",")]
    assert {field: table.get(field) for field in DEFAULT_HEADERS} == {
        field: list(aliases) for field, aliases in DEFAULT_HEADERS.items()}
