"""Reconciliation: a generated camt.053 with N entries (100,000 by default) against M open
invoices (1,000,000), end to end (parse, store, match, allocate set-based with collections_app.bulk, persist)
versus parsing the same file alone.

Set-up inserts customers and invoices with PostgreSQL COPY. The file mixes what a bank sends:
70 % transfers quoting an invoice number (some with spaces or lower case), 10 % to a virtual
IBAN, 10 % with only the payer's name and the amount (suggestions), 10 % unknown. Each
transfer carries the payer's account, as real ones do (one account per customer, so a
customer who paid earlier in the file is a known payer: suggestions by account).
ratio = end-to-end time / parse-only time (goal: at most 3). Peak memory is the process's
maximum resident set size, and the file size is printed next to it: streaming keeps the
former well below the latter.
"""
from __future__ import annotations

import datetime as dt
import random
import resource
import secrets
import time
from decimal import Decimal

IBAN = "FR7630004008280001012345691"
NAME = "reconciliation"
DESCRIPTION = "camt.053 import + matching + allocation vs parsing alone; entries/s, peak memory"


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _copy_invoices(creditor_id: int, customers: int, invoices: int) -> tuple[list[int], dict]:
    from django.db import connection

    now = dt.datetime.now(dt.UTC).isoformat()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy("COPY collections_app_customer (created_at, updated_at, creditor_id, external_ref, name, "
                      "company_name, is_business, email, phone, locale, time_zone, address_line1, postal_code, city, "
                      "country, tags, currency, credit_balance, portal_token, notes) FROM STDIN") as copy:
            for i in range(customers):
                copy.write_row((now, now, creditor_id, f"BC{i:07d}", f"Client Banc {i:07d}", "", False, "", "", "fr",
                                "Europe/Paris", "", "", "", "FR", "[]", "EUR", "0.00", secrets.token_urlsafe(24), ""))
        cursor.execute("SELECT min(id) FROM collections_app_customer WHERE creditor_id = %s", [creditor_id])
        first_customer = cursor.fetchone()[0]
        amounts = {}
        with raw.copy("COPY collections_app_invoice (created_at, updated_at, creditor_id, customer_id, external_ref, "
                      "description, currency, amount_total, amount_paid, amount_written_off, issue_date, due_date, "
                      "status) FROM STDIN") as copy:
            rng = random.Random(7)
            for i in range(invoices):
                amount = Decimal(rng.randint(1000, 500000)).scaleb(-2)
                amounts[i] = amount
                copy.write_row((now, now, creditor_id, first_customer + i % customers, f"BINV-{i:08d}", "", "EUR",
                                amount, "0.00", "0.00", "2024-01-01", "2024-02-15", "open"))
        cursor.execute("ANALYZE collections_app_invoice")
        cursor.execute("ANALYZE collections_app_customer")
    return [first_customer + i for i in range(customers)], amounts


def _payer_iban(number: int, bank: str = "20041") -> str:
    from schwifty import IBAN as Iban

    return Iban.generate("FR", bank_code=bank, branch_code="01005", account_code=f"{number:011d}").compact


def _write_camt(path, stamp: str, entries: int, invoices: int, amounts: dict, customer_ids: list[int], vibans: list[str]) -> None:
    rng = random.Random(11)
    payer_ibans: dict[int, str] = {}
    with open(path, "w", encoding="utf-8") as out:
        out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:'
                  'camt.053.001.08"><BkToCstmrStmt><GrpHdr><MsgId>BENCH-{stamp}</MsgId><CreDtTm>2024-03-04T06:00:00+01:00'
                  '</CreDtTm></GrpHdr><Stmt><Id>BENCH-1</Id><Acct><Id><IBAN>FR7630004008280001012345691</IBAN></Id>'
                  '<Ccy>EUR</Ccy></Acct>\n')
        used: set[int] = set()
        for n in range(entries):
            kind = rng.random()
            credited = ""
            name = f"Payeur {n}"
            while True:
                i = rng.randrange(invoices)
                if i not in used:
                    used.add(i)
                    break
            amount = amounts[i]
            customer = i % len(customer_ids)
            if customer not in payer_ibans:
                payer_ibans[customer] = _payer_iban(customer)
            payer = payer_ibans[customer]
            if kind < 0.6:
                text = f"Facture BINV-{i:08d}"
            elif kind < 0.7:
                text = f"binv {i:08d}"
            elif kind < 0.8 and vibans:
                credited = f"<CdtrAcct><Id><IBAN>{vibans[n % len(vibans)]}</IBAN></Id></CdtrAcct>"
                text = "virement"
            elif kind < 0.9:
                text = "paiement"
                name = f"Client Banc {i % len(customer_ids):07d}"
            else:
                text = "merci"
                amount = Decimal(rng.randint(100, 99999)).scaleb(-2)
                payer = _payer_iban(n, bank="30002")
            out.write(f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
                      f'<BookgDt><Dt>2024-03-04</Dt></BookgDt><ValDt><Dt>2024-03-04</Dt></ValDt>'
                      f'<AcctSvcrRef>B{stamp}{n:09d}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId>'
                      f'</Refs><RltdPties><Dbtr><Pty><Nm>{name}</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>{payer}</IBAN></Id>'
                      f'</DbtrAcct>{credited}</RltdPties>'
                      f'<RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n')
        out.write("</Stmt></BkToCstmrStmt></Document>\n")


def run(ctx) -> dict:
    from django.db import connection

    from collections_app.models import Creditor, Customer
    from collections_app.virtual_ibans.models import VirtualIBANRange
    from collections_app.virtual_ibans.services import virtual_iban_allocate
    from reconciliation import parsers
    from reconciliation.imports import statement_import
    from reconciliation.matching import transactions_match
    from reconciliation.models import BankAccount

    if connection.vendor != "postgresql":
        raise RuntimeError("the reconciliation benchmark needs PostgreSQL (COPY)")
    entries = ctx.scale(100_000, 2_000)
    invoices = ctx.scale(1_000_000, 20_000)
    customers = max(invoices // 10, 1)
    stamp = secrets.token_hex(3)
    creditor = Creditor.objects.create(name=f"Bench {stamp}", iban="FR7630004008280001012345691")
    started = time.perf_counter()
    customer_ids, amounts = _copy_invoices(creditor.pk, customers, invoices)
    VirtualIBANRange.objects.create(creditor=creditor, country="FR", bank_code="30004", branch_code="00999",
                                    account_prefix=str(random.randint(1, 9)), account_length=11)
    vibans = [virtual_iban_allocate(customer=c).iban for c in Customer.objects.filter(pk__in=customer_ids[:200])]
    setup_s = time.perf_counter() - started
    path = ctx.workdir / f"bench_camt053_{entries}.xml"
    _write_camt(path, stamp, entries, invoices, amounts, customer_ids, vibans)
    size_mb = round(path.stat().st_size / 1e6, 1)

    rss_before = _rss_mb()
    started = time.perf_counter()
    count = 0
    with open(path, "rb") as stream:
        for item in parsers.parse(stream, "camt.053"):
            count += isinstance(item, parsers.Entry)
    parse_s = time.perf_counter() - started
    rss_parse = _rss_mb()

    BankAccount.objects.update_or_create(account_id=IBAN, defaults={"creditor": creditor, "iban": IBAN})
    started = time.perf_counter()
    result = statement_import(source=path, filename=path.name, origin="command", match=False)
    store_s = time.perf_counter() - started
    rss_store = _rss_mb()
    started = time.perf_counter()
    matching = transactions_match(statement_ids=result.statement_ids)
    match_s = time.perf_counter() - started
    total_s = store_s + match_s
    rss_total = _rss_mb()
    return {
        "ratio": total_s / parse_s,
        "ratio_meaning": "end-to-end time / parse-only time of the same file (goal <= 3)",
        "figures": {
            "entries": count,
            "open invoices": invoices,
            "file size (MB)": size_mb,
            "set-up with COPY (s)": round(setup_s, 1),
            "parse only (s)": round(parse_s, 2),
            "parse only (entries/s)": round(count / parse_s),
            "parse + store, set-based (s)": round(store_s, 2),
            "parse + store / parse only": round(store_s / parse_s, 2),
            "match + allocate, set-based (s)": round(match_s, 2),
            "end to end (s)": round(total_s, 2),
            "end to end (entries/s)": round(count / total_s),
            "matched / to review": f"{matching.get('matched', 0)} / {matching.get('unmatched', 0)}",
            "peak RSS before / after parse / after store / after matching (MB)":
                f"{rss_before} / {rss_parse} / {rss_store} / {rss_total}",
        },
    }


