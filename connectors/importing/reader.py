"""Reading import files: CSV as real ERPs export it (comma or semicolon, UTF-8 with or without
BOM, Windows-1252/Latin-1, quoted fields with newlines) and XLSX (first sheet, read-only)."""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _

SAMPLE_SIZE = 1 << 20
DELIMITERS = (";", ",", "\t", "|")
# Exports may put a title, an export date or blank lines above the header row.
HEADER_SEARCH_ROWS = 20
SEP_HINT_RE = re.compile(r"sep=(.)\s*(?:\r\n|\n|\r)")
HeaderTest = Callable[[list[str]], bool]


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not a row error)."""


@dataclass
class RowSource:
    headers: list[str]
    rows: Iterator[tuple[int, list[Any]]]  # (row number as the user sees it, cell values)
    fraction: Callable[[], float]  # how much of the file has been read, 0..1
    kind: str
    encoding: str = ""
    delimiter: str = ""
    details: dict = field(default_factory=dict)


def detect_encoding(sample: bytes) -> str:
    """UTF-8 (BOM or not) or UTF-16 with its BOM when the bytes say so; otherwise the 8-bit
    code page whose reading looks most like Western European text: Windows-1252 (what Excel
    on Windows and most French ERPs write), Mac Roman (Excel for Mac's "CSV (Macintosh)"),
    or DOS code page 850 (Excel's "CSV (MS-DOS)", older accounting software). Windows-1252
    wins a tie."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best, best_score = "latin_1", None
    for encoding in EIGHT_BIT_ENCODINGS:
        try:
            text = sample.decode(encoding)
        except UnicodeDecodeError:  # cp1252 leaves five bytes undefined
            continue
        score = _western_text_score(text)
        if best_score is None or score > best_score:
            best, best_score = encoding, score
    return best


EIGHT_BIT_ENCODINGS = ("cp1252", "mac_roman", "cp850", "latin_1")
# Non-ASCII characters that Western European business text is made of, besides letters.
_LIKELY_SIGNS = set("€£°§µ²³«»’‘“”–—…·×")
_INSIDE_WORD_SIGNS = set("’‘·")
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")


def _western_text_score(text: str) -> int:
    """How much the non-ASCII characters of a decoded text read as Western European words:
    a letter in the case of its neighbours (é in "échéance", É in "ÉCHÉANCE", à alone) and a
    currency or typographic sign count for; a letter in the wrong case ("NumŽro", "NumÈro"), a
    box-drawing or control character, or a sign glued inside a word count against."""
    score = 0
    for found in _NON_ASCII_RE.finditer(text):
        i, char = found.start(), found.group()
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if char.isupper():
            if before.islower():
                score -= 1
            elif before.isalpha() or after.isalpha():
                score += 1
            # a capital standing alone ("12,50 Û") says nothing either way
        elif char.isalpha():
            score += -1 if before.isupper() and after.isupper() else 1
        elif char in _LIKELY_SIGNS and not (before.isalpha() and after.isalpha()
                                            and char not in _INSIDE_WORD_SIGNS):
            score += 1
        else:
            score -= 1
    return score


def detect_delimiter(text: str) -> str:
    """The delimiter that splits the leading lines into the most columns, counted on the lines
    that have the most common number of columns: title or export-date lines above the header
    (which have none) do not decide, nor do comma decimals in a semicolon file."""
    lines = [line for line in text.splitlines()[:HEADER_SEARCH_ROWS + 5] if line.strip()]
    sample = "\n".join(lines)
    best, best_score = ",", 0
    for delimiter in DELIMITERS:
        widths = [len(record) for record in csv.reader(io.StringIO(sample), delimiter=delimiter)]
        counts: dict[int, int] = {}
        for width in widths:
            if width > 1:
                counts[width] = counts.get(width, 0) + 1
        if not counts:
            continue
        width, lines_of_width = max(counts.items(), key=lambda item: (item[1] * (item[0] - 1), item[0]))
        score = lines_of_width * (width - 1)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _cells(record: list[Any]) -> list[str]:
    return ["" if c is None else str(c).strip().lstrip("\ufeff") for c in record]


def find_header(records: Iterator[list[Any]], is_header: HeaderTest | None) -> tuple[list[str], int, list]:
    """The header row: the first of the leading rows that names every required field (else
    the first non-empty row, whose missing columns are then reported). Returns it, its row
    number, and the rows read past it, to be read again as data."""
    read: list[list[Any]] = []
    for record in records:
        read.append(record)
        cells = _cells(record)
        if is_header is not None and is_header(cells):
            return cells, len(read), []
        if (is_header is None and any(cells)) or len(read) >= HEADER_SEARCH_ROWS:
            break
    for index, record in enumerate(read):
        cells = _cells(record)
        if any(cells):
            return cells, index + 1, read[index + 1:]
    raise ImportFileError(_("The file is empty."))


def read_csv(path: Path, *, delimiter: str = "auto", encoding: str = "auto",
             is_header: HeaderTest | None = None) -> RowSource:
    size = max(os.path.getsize(path), 1)
    raw = open(path, "rb")  # noqa: SIM115 - closed by the generator below
    sample = raw.read(SAMPLE_SIZE)
    raw.seek(0)
    if encoding in ("", "auto"):
        encoding = detect_encoding(sample)
    head = sample.decode(encoding, errors="replace").lstrip("\ufeff")[:65536]
    # Excel's "sep=;" first line names the delimiter.
    hint = SEP_HINT_RE.match(head)
    if delimiter in ("", "auto"):
        delimiter = hint.group(1) if hint else detect_delimiter(head)
    text = io.TextIOWrapper(raw, encoding=encoding, newline="")
    reader = csv.reader(text, delimiter=delimiter)
    skipped = 0
    try:
        if hint:
            next(reader)
            skipped = 1
        headers, header_row, replay = find_header(reader, is_header)
    except StopIteration:
        raw.close()
        raise ImportFileError(_("The file is empty.")) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raw.close()
        raise ImportFileError(_("The file cannot be read: %(error)s") % {"error": exc}) from exc
    except ImportFileError:
        raw.close()
        raise

    def rows() -> Iterator[tuple[int, list[Any]]]:
        number = skipped + header_row
        try:
            for record in itertools.chain(replay, reader):
                number += 1
                if record and any(cell.strip() for cell in record):
                    yield number, record
        except UnicodeDecodeError as exc:
            raise ImportFileError(_("The file is not valid %(encoding)s after row %(row)s.")
                                  % {"encoding": encoding, "row": number}) from exc
        except csv.Error as exc:
            raise ImportFileError(_("Row %(row)s cannot be read: %(error)s") % {"row": number + 1, "error": exc}) \
                from exc
        finally:
            raw.close()

    def fraction() -> float:
        try:
            return min(raw.tell() / size, 1.0)
        except ValueError:  # closed
            return 1.0

    return RowSource(headers=headers, rows=rows(), fraction=fraction, kind="csv", encoding=encoding,
                     delimiter=delimiter)


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date() if value.time() == dt.time(0) else value
    if isinstance(value, float):
        # As Excel shows it: 15 significant digits, so that a computed 119.99999999999999 is
        # 120 and 1234.5600000000002 is 1234.56. A Decimal, not a string: a number has no
        # decimal separator for the mapping's to apply to.
        return Decimal(f"{value:.15g}")
    return value


def read_xlsx(path: Path, *, is_header: HeaderTest | None = None) -> RowSource:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile/openpyxl raise many kinds for a file that is not XLSX
        raise ImportFileError(_("The file is not a readable XLSX workbook: %(error)s") % {"error": exc}) from exc
    # The first sheet whose header names the required columns (exports put a cover sheet or
    # a summary first), else the first non-empty sheet, whose missing columns are then reported.
    chosen = fallback = None
    declared_rows: dict[str, int] = {}
    for candidate in workbook.worksheets:
        # Some generators write a wrong used range (often "A1"), which read-only mode would
        # take at its word and cut the sheet to; the rows are read to their real end instead.
        declared_rows[candidate.title] = candidate.max_row or 0
        candidate.reset_dimensions()
        iterator = candidate.iter_rows(values_only=True)
        try:
            found = (candidate, iterator, *find_header(iterator, is_header))
        except ImportFileError:  # an empty sheet
            continue
        if is_header is None or is_header(found[2]):
            chosen = found
            break
        fallback = fallback or found
    chosen = chosen or fallback
    if chosen is None:
        workbook.close()
        raise ImportFileError(_("The file is empty."))
    sheet, iterator, headers, header_row, replay = chosen
    total = max(declared_rows[sheet.title], 1)
    state = {"row": header_row}

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for number, values in enumerate(itertools.chain(replay, iterator), start=header_row + 1):
                state["row"] = number
                cells = [_xlsx_cell(v) for v in values]
                if any(c not in (None, "") for c in cells):
                    yield number, cells
        finally:
            workbook.close()

    return RowSource(headers=headers, rows=rows(), fraction=lambda: min(state["row"] / total, 1.0), kind="xlsx",
                     details={"sheet": sheet.title})


def open_rows(path: Path, *, filename: str = "", delimiter: str = "auto", encoding: str = "auto",
              is_header: HeaderTest | None = None) -> RowSource:
    name = (filename or str(path)).lower()
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":  # OLE2: Excel 97-2003
        raise ImportFileError(_("This is an old Excel workbook (.xls): save it as .xlsx or as CSV, then import "
                                "it again."))
    if name.endswith((".xlsx", ".xlsm")) or magic.startswith(b"PK\x03\x04"):
        return read_xlsx(path, is_header=is_header)
    return read_csv(path, delimiter=delimiter, encoding=encoding, is_header=is_header)


def dict_rows(items: list[dict[str, Any]]) -> RowSource:
    """API rows: already named by field, numbered from 1 like the list they came in."""
    from connectors.importing.fields import FIELDS

    headers = list(FIELDS)
    total = max(len(items), 1)
    state = {"i": 0}

    def rows() -> Iterator[tuple[int, list[Any]]]:
        for index, item in enumerate(items, start=1):
            state["i"] = index
            if not isinstance(item, dict):
                yield index, [None] * len(headers)
                continue
            yield index, [item.get(h) for h in headers]

    return RowSource(headers=headers, rows=rows(), fraction=lambda: state["i"] / total, kind="api")
