"""Cells of the CSV files people open in a spreadsheet (error reports, journals, reports,
admin exports). A text that starts like a formula (`=`, `+`, `-`, `@`) would be run by Excel
or LibreOffice: a customer named `=HYPERLINK(...)` in an ERP file must stay a name. As OWASP
advises, such a text is written after a single quote. Numbers (`-12.50`) are left alone.

Files read by programs (the import's return file, status files, the FEC) are written as they
are: an ERP reads them back."""
from __future__ import annotations

import csv
import re
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d[\d\s.,]*")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose text cells cannot become formulas."""

    def __init__(self, out, **kwargs):
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row) -> None:
        self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)
