"""Demo data for reconciliation: a virtual IBAN range and virtual IBANs for the demo creditor,
its bank account and one imported camt.053 statement (a transfer quoting an invoice number, one
to a virtual IBAN, one the rules can only suggest, one unknown). Idempotent."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from collections_app.models import Creditor, Customer, Invoice
from collections_app.virtual_ibans.models import VirtualIBANRange
from collections_app.virtual_ibans.services import virtual_iban_allocate
from reconciliation.imports import statement_import
from reconciliation.models import BankAccount


def _entry(ref: str, amount: Decimal, name: str, text: str, day: dt.date, credited: str = "") -> str:
    account = f"<CdtrAcct><Id><IBAN>{credited}</IBAN></Id></CdtrAcct>" if credited else ""
    return (f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
            f"<BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>{ref}</AcctSvcrRef><NtryDtls><TxDtls>"
            f"<RltdPties><Dbtr><Nm>{name}</Nm></Dbtr>{account}</RltdPties>"
            f"<RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>")


def seed() -> dict[str, int]:
    creditor = Creditor.objects.filter(name="Atelier Dupont SAS").first()
    if creditor is None:
        return {}
    VirtualIBANRange.objects.get_or_create(creditor=creditor, defaults={
        "country": "FR", "bank_code": "30006", "branch_code": "00001", "account_prefix": "8", "account_length": 11})
    vibans = {c.external_ref: virtual_iban_allocate(customer=c).iban
              for c in Customer.objects.filter(creditor=creditor).order_by("pk")}
    BankAccount.objects.get_or_create(account_id=creditor.iban, defaults={
        "creditor": creditor, "iban": creditor.iban, "bic": creditor.bic, "name": "Compte principal",
        "write_off_tolerance": Decimal("1.00")})
    invoices = {i.external_ref: i for i in Invoice.objects.filter(creditor=creditor)}
    if not {"F2026-1000", "F2026-1031", "F2026-1041"} <= set(invoices) or "C-1004" not in vibans:
        return {"virtual_ibans": len(vibans)}
    first = invoices["F2026-1000"]
    day = first.issue_date + dt.timedelta(days=40)
    entries = [
        _entry("DEMO-0001", first.amount_total, "MARIE LEFEVRE", f"Facture {first.external_ref}", day),
        _entry("DEMO-0002", Decimal("100.00"), "JOHN SMITH", "payment", day, credited=vibans["C-1004"]),
        _entry("DEMO-0003", invoices["F2026-1041"].amount_total, "BERNARD SOPHIE", "reglement", day),
        _entry("DEMO-0004", Decimal("42.00"), "INCONNU", "merci", day),
    ]
    total = sum((Decimal(e.split('Ccy="EUR">')[1].split("<")[0]) for e in entries), Decimal(0))
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>DEMO-{day}</MsgId><CreDtTm>{day}T06:00:00+01:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>DEMO-{day}</Id><Acct><Id><IBAN>{creditor.iban}</IBAN></Id><Ccy>EUR</Ccy></Acct>"
        '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<Dt><Dt>{day}</Dt></Dt></Bal>"
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{total}</Amt>'
        f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>{''.join(entries)}</Stmt>"
        "</BkToCstmrStmt></Document>")
    result = statement_import(source=document.encode(), filename=f"demo-camt053-{day}.xml", origin="command")
    return {"virtual_ibans": len(vibans), "bank_transactions_created": result.created}
