"""Running an import: read → normalise (streaming, progress) → write in one transaction."""
from __future__ import annotations

import itertools
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from connectors.importing.fields import FIELDS, resolve_headers
from connectors.importing.normalise import CleanRow, Normaliser, RowError, month_first_dates
from connectors.importing.reader import RowSource
from connectors.importing.writer import WriteOutcome, copy_line, write_orm, write_postgres

PREVIEW_ROWS = 20
# Character sets told in the job's message: read right, but the user may wonder about the file.
UNUSUAL_ENCODINGS = {"mac_roman": "Mac Roman (Excel for Mac)", "cp850": "DOS code page 850 (Excel's MS-DOS CSV)",
                     "latin_1": "Latin-1"}
Progress = Callable[[str, float, int], None]  # phase, fraction 0..1, rows read


class _Rollback(Exception):
    pass


@dataclass
class ImportRun:
    rows_total: int = 0
    rows_valid: int = 0
    errors: list[RowError] = field(default_factory=list)
    outcome: WriteOutcome | None = None
    written: bool = False  # committed
    preview: list[dict[str, Any]] = field(default_factory=list)
    valid_refs: dict[str, int] = field(default_factory=dict)  # external_ref -> row number
    file_error: str = ""
    row_refs: dict[int, str] = field(default_factory=dict)  # row -> external_ref (API answers)
    totals_rows: list[tuple[int, str]] = field(default_factory=list)  # (row, label): read, not imported
    header_rows: list[int] = field(default_factory=list)  # the header again (page breaks of a report)
    line_rows: int = 0  # further lines of an invoice already read (exports with a row per line)
    month_first: bool = False  # dates read month first, as the file writes them
    heading_rows: list[tuple[int, str]] = field(default_factory=list)  # section headings of a report
    encoding: str = ""  # the CSV's character set, when detected

    def notes(self) -> str:
        notes = [_("Row %(row)s reads as a totals row (“%(label)s”): it was not imported.")
                 % {"row": row, "label": label} for row, label in self.totals_rows]
        if self.heading_rows:
            notes.append(ngettext("Row %(rows)s reads as a section heading of a report (“%(label)s”): it was "
                                  "not imported.",
                                  "Rows %(rows)s read as section headings of a report (“%(label)s”…): they "
                                  "were not imported.", len(self.heading_rows))
                         % {"rows": ", ".join(str(row) for row, _label in self.heading_rows[:20]),
                            "label": self.heading_rows[0][1]})
        if self.encoding in UNUSUAL_ENCODINGS:
            notes.append(_("The file was read as %(encoding)s text.") % {"encoding": UNUSUAL_ENCODINGS[self.encoding]})
        if self.month_first:
            notes.append(_("Dates were read month first (12/31/2026), as this file writes them."))
        if self.line_rows:
            notes.append(ngettext("%(count)s row is a further line of an invoice above: its invoice was imported "
                                  "once.",
                                  "%(count)s rows are further lines of invoices above: each invoice was imported "
                                  "once.", self.line_rows) % {"count": self.line_rows})
        if self.header_rows:
            notes.append(ngettext("Row %(rows)s repeats the header row: it was not imported.",
                                  "Rows %(rows)s repeat the header row: they were not imported.",
                                  len(self.header_rows))
                         % {"rows": ", ".join(str(row) for row in self.header_rows[:20])})
        return " ".join(notes)


# Accounting exports end with a totals line ("Total général;;;12 345,67"): not an invoice.
TOTALS_RE = re.compile(r"^(sous[ -]?)?(total|totaux|sum|summe|grand total)\b", re.IGNORECASE)


def totals_label(values: list[Any], normaliser: Normaliser) -> str | None:
    """The label of a totals row: its invoice number and customer cells are empty or the label."""
    texts = [str(v).strip() for v in values if v not in (None, "") and str(v).strip()]
    if not texts or not TOTALS_RE.match(texts[0]):
        return None
    for key in ("external_ref", "customer_ref"):
        cell = normaliser._cell(values, key)
        if cell is not None and str(cell).strip() != texts[0]:
            return None
    return texts[0][:60]


def repeats_header(values: list[Any], headers: list[str]) -> bool:
    """Report-style exports print the header again after each page break."""
    first = values[0] if values else None
    if not headers or not headers[0] or not isinstance(first, str) or first.strip() != headers[0]:
        return False
    return [str(v if v is not None else "").strip() for v in values[:len(headers)]] == \
        headers[:len(values)] and len(values) >= min(len(headers), 2)


def heading_label(values: list[Any], normaliser: Normaliser) -> str | None:
    """The text of a report's section heading ("Current", "1 - 30 days past due" in an aged
    balance): the row's only cell, in a column that names no field. A lone invoice number or
    amount is still a row with missing fields."""
    filled = [(index, value) for index, value in enumerate(values) if value not in (None, "") and str(value).strip()]
    if len(filled) != 1 or filled[0][0] in normaliser.field_columns.values():
        return None
    return str(filled[0][1]).strip()[:60]


DATE_SAMPLE_ROWS = 1000


def make_normaliser(source: RowSource, *, columns: dict[str, str] | None, default_currency: str, date_format: str,
                    decimal_separator: str) -> Normaliser:
    """Without a date format, the file's first rows tell whether it writes dates month first:
    they are read ahead (and given back to the source) to decide before any row is cleaned."""
    column_fields = resolve_headers(source.headers, columns)
    month_first = False
    if not date_format and source.kind != "api":
        indexes = [i for i, f in column_fields.items() if f in ("issue_date", "due_date")]
        sample = list(itertools.islice(source.rows, DATE_SAMPLE_ROWS))
        source.rows = itertools.chain(sample, source.rows)
        month_first = month_first_dates(values[i] for _n, values in sample for i in indexes if i < len(values))
    return Normaliser(headers=source.headers, column_fields=column_fields, default_currency=default_currency,
                      date_format=date_format, decimal_separator=decimal_separator, month_first=month_first)


def not_an_invoice(number: int, values: list[Any], normaliser: Normaliser, headers: list[str],
                   run: ImportRun) -> bool:
    """Whether a row that failed its checks is a totals row, the header again or a section
    heading (noted in the run, not an error). Only rows with errors are asked: an invoice row
    costs nothing more."""
    if (label := totals_label(values, normaliser)) is not None:
        run.totals_rows.append((number, label))
    elif repeats_header(values, headers):
        run.header_rows.append(number)
    elif (label := heading_label(values, normaliser)) is not None:
        run.heading_rows.append((number, label))
    else:
        return False
    return True


def valid_refs(source: RowSource, *, columns: dict[str, str] | None, default_currency: str, date_format: str,
               decimal_separator: str, rejected_rows: set[int]) -> dict[str, int]:
    """external_ref -> row of the rows an import wrote, found again from its file: the rows that
    are valid, less those it rejected later (checks against the database)."""
    normaliser = make_normaliser(source, columns=columns, default_currency=default_currency,
                                 date_format=date_format, decimal_separator=decimal_separator)
    for number, values in source.rows:
        normaliser.clean(number, values)
    return {ref: row for ref, row in normaliser.seen.items() if row not in rejected_rows}


def choose_engine(engine: str = "auto") -> str:
    if engine == "auto":
        return "postgres" if connection.vendor == "postgresql" else "orm"
    return engine


def run_import(*, creditor, source: RowSource, columns: dict[str, str] | None, default_currency: str,
               date_format: str, decimal_separator: str, all_or_nothing: bool, dry_run: bool,
               engine: str = "auto", progress: Progress | None = None, collect_outcomes: bool = False,
               on_written: Callable[[ImportRun], None] | None = None, keep_row_refs: bool = False) -> ImportRun:
    """Read and validate every row, then write the valid ones in one transaction, unless the
    mode is all-or-nothing and a row is wrong, or this is a dry run (written, then rolled back,
    so that the preview counts are exact). `on_written` runs inside the transaction, just
    before commit (the job's own status change and event)."""
    engine = choose_engine(engine)
    report = progress or (lambda phase, fraction, rows: None)
    run = ImportRun()
    normaliser = make_normaliser(source, columns=columns, default_currency=default_currency,
                                 date_format=date_format, decimal_separator=decimal_separator)
    run.month_first = normaliser.month_first
    run.encoding = source.encoding
    missing = normaliser.missing_columns()
    if missing:
        run.errors = [RowError(1, f, _("No column is recognised as %(field)s (%(label)s).")
                               % {"field": f, "label": FIELDS[f][0]}) for f in missing]
        return run

    spool = tempfile.TemporaryFile(mode="w+", encoding="utf-8") if engine == "postgres" else None
    rows: list[CleanRow] = []
    last = time.monotonic()
    report("reading", 0.0, 0)
    try:
        is_file = source.kind != "api"
        for number, values in source.rows:
            clean, errors = normaliser.clean(number, values)
            if errors and is_file and not_an_invoice(number, values, normaliser, source.headers, run):
                continue
            if clean is None and not errors:
                run.line_rows += 1
                continue
            run.rows_total += 1
            if keep_row_refs:
                ref = normaliser._cell(values, "external_ref") if clean is None else clean.external_ref
                run.row_refs[number] = str(ref or "").strip()
            if errors:
                run.errors.extend(errors)
                continue
            run.rows_valid += 1
            if len(run.preview) < PREVIEW_ROWS:
                run.preview.append({**clean._asdict(), "amount": str(clean.amount),
                                    "balance": None if clean.balance is None else str(clean.balance),
                                    "issue_date": clean.issue_date.isoformat(),
                                    "due_date": clean.due_date.isoformat()})
            if spool is not None:
                spool.write(copy_line(clean))
            else:
                rows.append(clean)
            if not run.rows_total % 2000 and time.monotonic() - last > 0.5:
                last = time.monotonic()
                report("reading", source.fraction(), run.rows_total)
        report("reading", 1.0, run.rows_total)
        run.valid_refs = normaliser.seen
        if run.errors and all_or_nothing and not dry_run:
            return run
        if not run.rows_valid:
            return run
        try:
            with transaction.atomic():
                if spool is not None:
                    spool.seek(0)
                    outcome = write_postgres(creditor=creditor, copy_source=spool, collect_outcomes=collect_outcomes,
                                             balances=normaliser.has_balance,
                                             progress=lambda phase, fraction: report(phase, fraction,
                                                                                     run.rows_total))
                else:
                    report("writing", 0.0, run.rows_total)
                    outcome = write_orm(creditor=creditor, rows=rows, collect_outcomes=collect_outcomes)
                run.outcome = outcome
                for error in outcome.errors:
                    error_column = normaliser.column_name(error.column) if error.column else error.column
                    run.errors.append(RowError(error.row, error_column, error.message))
                if outcome.errors:
                    rejected = {error.row for error in outcome.errors}
                    run.valid_refs = {ref: n for ref, n in run.valid_refs.items() if n not in rejected}
                run.rows_valid -= len(outcome.errors)
                if dry_run or (all_or_nothing and run.errors):
                    raise _Rollback
                # Deferred foreign-key checks run at commit: on a big file, a phase of its own.
                report("committing", 1.0, run.rows_total)
                if on_written:
                    run.written = True
                    on_written(run)
        except _Rollback:
            run.written = False
        else:
            run.written = True
    finally:
        if spool is not None:
            spool.close()
    run.errors.sort(key=lambda e: e.row)
    return run
