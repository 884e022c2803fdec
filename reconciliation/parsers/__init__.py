"""Bank statement formats: detection and parsing into StatementHeader / Entry streams."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from reconciliation.parsers import camt, cfonb, mt940
from reconciliation.parsers.base import Entry, StatementHeader, StatementParseError, UnsupportedFormat

__all__ = ["Entry", "StatementHeader", "StatementParseError", "UnsupportedFormat", "detect", "parse"]

PAIN002_RE = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:pain\.002\.")
HEAD_BYTES = 64 * 1024


def detect(head: bytes) -> str:
    """The format of a file from its first bytes: camt.052, camt.053, camt.054, pain.002, mt940 or
    cfonb120."""
    # a UTF-16 document is looked at as UTF-8 (camt.scannable leaves other heads as they are)
    head = camt.scannable(head)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        if PAIN002_RE.search(head):
            return "pain.002"
        found = camt.detect_version(head)
        if found is None:
            # Status reports also come in envelopes, without a namespace or in the German
            # banks' DK namespace: the SEPA module knows them.
            from collections_app.sepa.pain002 import is_status_report

            if is_status_report(head):
                return "pain.002"
            _refuse_other_formats(stripped)
            raise UnsupportedFormat("XML file that is neither camt.052, camt.053, camt.054 nor pain.002")
        return found[0]
    text = head.decode("cp1252", errors="replace")
    if mt940.looks_like(text):
        return "mt940"
    if cfonb.looks_like(head):
        return "cfonb120"
    _refuse_other_formats(stripped)
    raise UnsupportedFormat("unknown statement format (expected camt.052, camt.053, camt.054, MT940 or CFONB 120)")


# What people download from online banking when asked for "the statement", told apart so that the
# error says what to ask the bank for.
OTHER_FORMATS = (
    (re.compile(rb"OFXHEADER|<OFX>", re.IGNORECASE), "an OFX file (for personal finance software)"),
    (re.compile(rb"^!Type:", re.IGNORECASE), "a QIF file (for personal finance software)"),
    (re.compile(rb"^%PDF-"), "a PDF document"),
    (re.compile(rb"^(?!<)[^\r\n]*[;,\t][^\r\n]*(?:\r?\n)"), "a spreadsheet export (CSV)"),
)


PARSERS = {"camt.052": camt.parse, "camt.053": camt.parse, "camt.054": camt.parse, "mt940": mt940.parse,
           "cfonb120": cfonb.parse}


def parse(stream: IO[bytes], fmt: str) -> Iterator[StatementHeader | Entry]:
    return PARSERS[fmt](stream)


def _refuse_other_formats(head: bytes) -> None:
    for signature, kind in OTHER_FORMATS:
        if signature.search(head[:2048]):
            raise UnsupportedFormat(f"this is {kind}, not a bank statement format read here: download the account's "
                                    "statements as camt.053, MT940 or CFONB 120 from the bank's online banking or "
                                    "EBICS instead")
