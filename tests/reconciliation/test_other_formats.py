"""Files people download from online banking when asked for "the statement", which are not
statements we read: the error says what they are and what to ask the bank for."""
from __future__ import annotations

import pytest

from reconciliation.parsers import UnsupportedFormat, detect

OFX = (b"OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\n\r\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS>"
       b"<CURDEF>EUR<BANKACCTFROM><BANKID>30004<ACCTID>00012345678</BANKACCTFROM>")


@pytest.mark.parametrize("head, kind", [
    (OFX, "an OFX file"),
    (b'<?xml version="1.0"?>\n<?OFX OFXHEADER="200" VERSION="220"?>\n<OFX><SIGNONMSGSRSV1>', "an OFX file"),
    (b"!Type:Bank\r\nD23/11/2026\r\nT120.00\r\nPDUPONT\r\n^\r\n", "a QIF file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a PDF document"),
    ("Date;Libellé;Débit;Crédit\r\n23/11/2026;VIR SEPA DUPONT;;120,00\r\n".encode("cp1252"),
     "a spreadsheet export (CSV)"),
])
def test_other_downloads_are_named_with_what_to_ask_for(head, kind):
    with pytest.raises(UnsupportedFormat) as error:
        detect(head)
    assert kind in str(error.value)
    assert "camt.053, MT940 or CFONB 120" in str(error.value)


def test_an_unknown_file_still_says_which_formats_are_read():
    with pytest.raises(UnsupportedFormat, match="expected camt.052, camt.053, camt.054, MT940 or CFONB 120"):
        detect(b"\x00\x01\x02 random bytes")
