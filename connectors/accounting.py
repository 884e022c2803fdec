"""Accounting exports of a period: journal lines (CSV) and the French FEC.

Each movement of money is one balanced entry of two lines:
- payment received:   debit bank 512000        / credit customer 411000 (auxiliary: the customer)
- refund paid out:    debit customer 411000    / credit bank 512000
- payment reversed (direct-debit return, chargeback): debit customer 411000 / credit bank 512000
- write-off:          debit 654000 (irrecoverable receivables) / credit customer 411000
Dates are the creditor's local dates. Write-offs and reversals are read from the outbox
(invoice.written_off / payment.reversed events), which dates them exactly.
"""
from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _

from collections_app.models import Creditor, Customer, Payment, PaymentMethod, Refund
from connectors.spreadsheet import SafeWriter
from notifications.models import Event

# Article A47 A-1 of the Livre des procédures fiscales: these 18 columns, in this order.
FEC_COLUMNS = ["JournalCode", "JournalLib", "EcritureNum", "EcritureDate", "CompteNum", "CompteLib", "CompAuxNum",
               "CompAuxLib", "PieceRef", "PieceDate", "EcritureLib", "Debit", "Credit", "EcritureLet", "DateLet",
               "ValidDate", "Montantdevise", "Idevise"]
JOURNAL_COLUMNS = ["date", "journal", "entry", "kind", "account", "account_label", "customer_ref", "customer_name",
                   "piece_ref", "label", "debit", "credit", "currency"]


@dataclass(frozen=True)
class Line:
    account: tuple[str, str]
    debit: Decimal
    credit: Decimal
    customer: Customer | None = None
    auxiliary: str = ""  # the customer's auxiliary account (CompAuxNum)


@dataclass(frozen=True)
class Entry:
    kind: str  # payment, refund, reversal, write_off
    date: dt.date
    journal: tuple[str, str]
    piece_ref: str
    label: str
    currency: str
    lines: tuple[Line, ...]
    number: str = ""

    @property
    def balanced(self) -> bool:
        return sum(line.debit for line in self.lines) == sum(line.credit for line in self.lines)


def _local(moment: dt.datetime, tz: ZoneInfo) -> dt.date:
    return moment.astimezone(tz).date()


def _bounds(start: dt.date, end: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    return (dt.datetime.combine(start, dt.time.min, tzinfo=tz),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz))


@dataclass(frozen=True)
class Chart:
    """The accounts and journals an export books to (connectors.models.AccountingSettings)."""
    bank_journal: tuple[str, str]
    misc_journal: tuple[str, str]
    bank: tuple[str, str]
    card: tuple[str, str]
    customers: tuple[str, str]
    write_off: tuple[str, str]
    auxiliary_prefix: str = ""

    @classmethod
    def of(cls, creditor: Creditor) -> Chart:
        from connectors.models import AccountingSettings

        s = AccountingSettings.objects.filter(creditor=creditor).first() or AccountingSettings(creditor=creditor)
        bank = (s.bank_account, s.bank_account_label)
        return cls(bank_journal=(s.bank_journal, s.bank_journal_label),
                   misc_journal=(s.misc_journal, s.misc_journal_label), bank=bank,
                   card=(s.card_account, s.card_account_label or s.card_account) if s.card_account else bank,
                   customers=(s.customer_account, s.customer_account_label),
                   write_off=(s.write_off_account, s.write_off_account_label), auxiliary_prefix=s.auxiliary_prefix)

    def treasury(self, method: str | None) -> tuple[str, str]:
        """Card payments wait on their own account until the processor pays them out."""
        return self.card if method == PaymentMethod.CARD else self.bank

    def customer_line(self, customer: Customer, debit: Decimal, credit: Decimal) -> Line:
        return Line(self.customers, debit, credit, customer, f"{self.auxiliary_prefix}{customer.external_ref}")


def _money_in(chart: Chart, method: str | None, customer: Customer, amount: Decimal) -> tuple[Line, Line]:
    treasury = Line(chart.treasury(method), amount, Decimal("0.00"))
    return treasury, chart.customer_line(customer, Decimal("0.00"), amount)


def _money_out(chart: Chart, method: str | None, customer: Customer, amount: Decimal) -> tuple[Line, Line]:
    treasury = Line(chart.treasury(method), Decimal("0.00"), amount)
    return chart.customer_line(customer, amount, Decimal("0.00")), treasury


def accounting_entries(*, creditor: Creditor, start: dt.date, end: dt.date) -> list[Entry]:
    tz = ZoneInfo(creditor.time_zone)
    chart = Chart.of(creditor)
    since, until = _bounds(start, end, tz)
    entries: list[Entry] = []
    payments = (Payment.objects.filter(creditor=creditor, succeeded_at__gte=since, succeeded_at__lt=until)
                .select_related("customer", "payment_request").order_by("succeeded_at", "id"))
    for p in payments:
        piece = p.payment_request.reference if p.payment_request_id else (p.gateway_reference or str(p.uuid)[:8])
        entries.append(Entry("payment", _local(p.succeeded_at, tz), chart.bank_journal, piece[:40],
                             f"Paiement {p.get_method_display()} {p.customer.name}"[:100], p.currency,
                             _money_in(chart, p.method, p.customer, p.amount)))
    refunds = (Refund.objects.filter(payment__creditor=creditor, status=Refund.Status.SUCCEEDED,
                                     completed_at__gte=since, completed_at__lt=until)
               .select_related("payment__customer").order_by("completed_at", "id"))
    for r in refunds:
        entries.append(Entry("refund", _local(r.completed_at, tz), chart.bank_journal, str(r.uuid)[:8],
                             f"Remboursement {r.payment.customer.name}"[:100], r.currency,
                             _money_out(chart, r.payment.method, r.payment.customer, r.amount)))
    events = (Event.objects.filter(creditor_id=creditor.pk, type__in=["invoice.written_off", "payment.reversed"],
                                   occurred_at__gte=since, occurred_at__lt=until).order_by("occurred_at", "id"))
    events = list(events)
    customers = Customer.objects.in_bulk({e.payload.get("customer_id") for e in events})
    for e in events:
        customer = customers.get(e.payload.get("customer_id"))
        if customer is None:
            continue
        if e.type == "invoice.written_off":
            amount = Decimal(e.payload["written_off_amount"])
            if amount <= 0:
                continue
            entries.append(Entry("write_off", _local(e.occurred_at, tz), chart.misc_journal,
                                 e.payload["invoice_external_ref"][:40],
                                 f"Créance irrécouvrable {e.payload['invoice_external_ref']}"[:100],
                                 e.payload["currency"],
                                 (Line(chart.write_off, amount, Decimal("0.00")),
                                  chart.customer_line(customer, Decimal("0.00"), amount))))
        else:
            amount = Decimal(e.payload["amount"])
            entries.append(Entry("reversal", _local(e.occurred_at, tz), chart.bank_journal,
                                 (e.payload.get("payment_request_reference") or str(e.payload["payment_id"]))[:40],
                                 f"Rejet {e.payload.get('reason_code') or ''} {customer.name}".replace("  ", " ")[:100],
                                 e.payload["currency"],
                                 _money_out(chart, e.payload.get("method"), customer, amount)))
    entries.sort(key=lambda x: (x.date, x.journal[0], x.kind))
    counters: dict[str, int] = {}
    numbered = []
    for entry in entries:
        counters[entry.journal[0]] = counters.get(entry.journal[0], 0) + 1
        numbered.append(Entry(**{**entry.__dict__, "number": f"{entry.journal[0]}{counters[entry.journal[0]]:06d}"}))
    return numbered


def _fec_amount(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",")


def _clean(text: str) -> str:
    # Tabs and line breaks would break the tab-separated layout.
    return " ".join(str(text).split())


def fec(entries: Iterable[Entry], *, currency: str = "EUR") -> bytes:
    """The FEC as the tax administration reads it: tab-separated, header row, dates
    YYYYMMDD, comma decimals. Only entries in the accounting currency (EUR) are listed:
    other currencies need an exchange rate the platform does not have (see the journal CSV)."""
    out = io.StringIO()
    out.write("\t".join(FEC_COLUMNS) + "\r\n")
    for entry in entries:
        if entry.currency != currency:
            continue
        day = entry.date.strftime("%Y%m%d")
        for line in entry.lines:
            customer = line.customer
            out.write("\t".join(_clean(v) for v in (
                entry.journal[0], entry.journal[1], entry.number, day, line.account[0], line.account[1],
                line.auxiliary, customer.name if customer else "", entry.piece_ref, day,
                entry.label, _fec_amount(line.debit), _fec_amount(line.credit), "", "", day, "", "",
            )) + "\r\n")
    return out.getvalue().encode("iso8859_15", errors="replace")


def fec_filename(creditor: Creditor, end: dt.date) -> str:
    siren = "".join(ch for ch in creditor.registration_number if ch.isdigit())[:9] or "000000000"
    return f"{siren}FEC{end.strftime('%Y%m%d')}.txt"


def journal_csv(entries: Iterable[Entry]) -> bytes:
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(JOURNAL_COLUMNS)
    for entry in entries:
        for line in entry.lines:
            writer.writerow([entry.date.isoformat(), entry.journal[0], entry.number, entry.kind, line.account[0],
                             line.account[1], line.customer.external_ref if line.customer else "",
                             line.customer.name if line.customer else "", entry.piece_ref, entry.label,
                             f"{line.debit:.2f}", f"{line.credit:.2f}", entry.currency])
    return out.getvalue().encode("utf-8-sig")


def period_check(start: dt.date, end: dt.date) -> None:
    from collections_app.errors import ValidationFailed

    if end < start:
        raise ValidationFailed(_("The end of the period is before its start."), field="end")


def accounting_export_build(*, creditor: Creditor, start: dt.date, end: dt.date,
                            format: str = "fec") -> tuple[str, bytes, int]:
    """(file name, content, lines) of a period's export, recorded as an ExportJob."""
    from connectors.models import ExportJob

    period_check(start, end)
    entries = accounting_entries(creditor=creditor, start=start, end=end)
    if format == "fec":
        name, body = fec_filename(creditor, end), fec(entries)
    elif format == "journal":
        name, body = f"journal-{creditor.pk}-{start:%Y%m%d}-{end:%Y%m%d}.csv", journal_csv(entries)
    else:
        from collections_app.errors import ValidationFailed

        raise ValidationFailed(_("Unknown format %(format)s.") % {"format": format}, field="format")
    lines = sum(len(e.lines) for e in entries)
    ExportJob.objects.create(kind=format, creditor=creditor, path=name, period_start=start, period_end=end,
                             rows=lines)
    return name, body, lines
