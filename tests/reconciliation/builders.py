"""camt.053 documents built for tests, shaped like the banks' (one entry per transfer)."""
from __future__ import annotations

from decimal import Decimal
from xml.sax.saxutils import escape


def camt053(account_iban: str, entries: list[dict], *, version: str = "02", day: str = "2024-03-04") -> bytes:
    credits = sum((Decimal(str(e["amount"])) for e in entries), Decimal(0))
    rows = []
    for e in entries:
        rows.append(f"""<Ntry><Amt Ccy="EUR">{e['amount']}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>{escape(e['ref'])}</AcctSvcrRef>
<NtryDtls><TxDtls>{f"<Refs><EndToEndId>{escape(e['e2e'])}</EndToEndId></Refs>" if e.get('e2e') else ''}<RltdPties><Dbtr><Nm>{escape(e.get('name', ''))}</Nm></Dbtr>
{f"<DbtrAcct><Id><IBAN>{e['payer_iban']}</IBAN></Id></DbtrAcct>" if e.get('payer_iban') else ''}
{f"<CdtrAcct><Id><IBAN>{e['credited']}</IBAN></Id></CdtrAcct>" if e.get('credited') else ''}</RltdPties>
<RmtInf><Ustrd>{escape(e.get('text', ''))}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}"><BkToCstmrStmt>
<GrpHdr><MsgId>GEN</MsgId><CreDtTm>{day}T06:00:00+01:00</CreDtTm></GrpHdr>
<Stmt><Id>GEN-{day}</Id><Acct><Id><Othr><Id>{account_iban}</Id></Othr></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{credits}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>
{''.join(rows)}</Stmt></BkToCstmrStmt></Document>""".encode()
