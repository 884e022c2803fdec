"""The monthly financial report: collected amounts, DSO, aging, reminder and retry results.

Reminder scenarios and retry attempts belong to other modules (dunning, SEPA retries): their
sections are computed only when those models exist, and shown as not available otherwise.
"""
from __future__ import annotations

import calendar
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldError
from django.db.models import Count, F, Q, Sum
from django.utils.html import escape
from django.utils.translation import gettext as _

from collections_app.models import Creditor, Invoice, Payment
from collections_app.money import round_money
from connectors.spreadsheet import SafeWriter

AGING_BUCKETS = [("not_due", None, -1), ("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None)]
ZERO = Decimal("0.00")


@dataclass
class MonthlyReport:
    year: int
    month: int
    creditor: Creditor | None
    start: dt.date
    end: dt.date
    as_of: dt.date
    collected: list[dict[str, Any]] = field(default_factory=list)  # creditor, method, currency, count, amount
    collected_by_method: dict[str, Decimal] = field(default_factory=dict)
    invoiced: Decimal = ZERO
    receivables: Decimal = ZERO
    dso_days: Decimal | None = None
    aging: dict[str, Decimal] = field(default_factory=dict)
    scenarios: list[dict[str, Any]] | None = None  # None: not available
    retries: dict[str, Any] | None = None  # None: not available
    currency: str = "EUR"


def _month_bounds(year: int, month: int, tz: ZoneInfo) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    start = dt.date(year, month, 1)
    end = dt.date(year, month, calendar.monthrange(year, month)[1])
    return (start, end, dt.datetime.combine(start, dt.time.min, tzinfo=tz),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz))


def monthly_report(*, year: int, month: int, creditor: Creditor | None = None,
                   today: dt.date | None = None) -> MonthlyReport:
    tz = ZoneInfo(creditor.time_zone if creditor else settings.TIME_ZONE)
    start, end, since, until = _month_bounds(year, month, tz)
    today = today or dt.datetime.now(tz).date()
    as_of = min(end, today)
    report = MonthlyReport(year=year, month=month, creditor=creditor, start=start, end=end, as_of=as_of,
                           currency=creditor.default_currency if creditor else "EUR")
    scope = Q(creditor=creditor) if creditor else Q()

    payments = (Payment.objects.filter(scope, succeeded_at__gte=since, succeeded_at__lt=until)
                .values("creditor__name", "method", "currency")
                .annotate(count=Count("id"), amount=Sum("amount")).order_by("creditor__name", "method"))
    labels = dict(Payment._meta.get_field("method").choices)
    for row in payments:
        report.collected.append({"creditor": row["creditor__name"], "method": row["method"],
                                 "method_label": str(labels.get(row["method"], row["method"])),
                                 "currency": row["currency"], "count": row["count"],
                                 # SQLite sums decimals without their scale: 150, not 150.00
                                 "amount": round_money(row["amount"], row["currency"])})
        if row["currency"] == report.currency:
            report.collected_by_method[row["method"]] = report.collected_by_method.get(row["method"], ZERO) \
                + round_money(row["amount"], row["currency"])

    # Aging and DSO from today's balances of the invoices issued by the end of the month (the
    # platform keeps no daily balance history: for a past month this is the balance as of now).
    due = F("amount_total") - F("amount_paid") - F("amount_written_off")
    open_invoices = Invoice.objects.filter(scope, status__in=Invoice.OPEN_STATUSES, issue_date__lte=end,
                                           currency=report.currency)
    report.aging = {}
    for name, low, high in AGING_BUCKETS:
        # days overdue = as_of - due_date; "not due" is everything due today or later
        if low is None:
            bucket = open_invoices.filter(due_date__gte=as_of)
        else:
            bucket = open_invoices.filter(due_date__lte=as_of - dt.timedelta(days=max(low, 1)))
            if high is not None:
                bucket = bucket.filter(due_date__gte=as_of - dt.timedelta(days=high))
        report.aging[name] = round_money(bucket.aggregate(total=Sum(due))["total"] or ZERO, report.currency)
    report.receivables = sum(report.aging.values(), ZERO)
    report.invoiced = (Invoice.objects.filter(scope, issue_date__gte=start, issue_date__lte=end,
                                              currency=report.currency)
                       .exclude(status=Invoice.Status.CANCELLED)
                       .aggregate(total=Sum("amount_total"))["total"] or ZERO)
    report.invoiced = round_money(report.invoiced, report.currency)
    days = (end - start).days + 1
    if report.invoiced > 0:
        report.dso_days = (report.receivables / report.invoiced * days).quantize(Decimal("0.1"))

    report.scenarios = _scenario_rates(creditor, start, end)
    report.retries = _retry_recovery(creditor, since, until)
    return report


def _optional_model(name: str):
    try:
        return apps.get_model("collections_app", name)
    except LookupError:
        return None


def _scenario_rates(creditor: Creditor | None, start: dt.date, end: dt.date) -> list[dict[str, Any]] | None:
    """Per reminder scenario: of the invoices reminded this month, how many are paid now."""
    reminder = _optional_model("Reminder")
    if reminder is None:
        return None
    try:
        rows = (reminder.objects.filter(run_date__gte=start, run_date__lte=end, status="sent",
                                        **({"invoice__creditor": creditor} if creditor else {}))
                .values("scenario_id", "scenario__name")
                .annotate(reminded=Count("invoice", distinct=True),
                          paid=Count("invoice", distinct=True, filter=Q(invoice__status=Invoice.Status.PAID)))
                .order_by("scenario__name"))
        result = []
        for row in rows:
            rate = (Decimal(row["paid"]) / row["reminded"] * 100).quantize(Decimal("0.1")) if row["reminded"] else None
            result.append({"scenario": row["scenario__name"], "reminded": row["reminded"], "paid": row["paid"],
                           "rate": rate})
        return result
    except FieldError:  # a reminder model of another shape: say so rather than guess
        return None


def _retry_recovery(creditor: Creditor | None, since: dt.datetime, until: dt.datetime) -> dict[str, Any] | None:
    """Of the retries (attempts after a failure) finished this month, how many collected."""
    attempt = _optional_model("CollectionAttempt")
    if attempt is None:
        return None
    try:
        rows = attempt.objects.filter(number__gte=2, finished_at__gte=since, finished_at__lt=until,
                                      **({"creditor": creditor} if creditor else {}))
        counts = rows.aggregate(succeeded=Count("id", filter=Q(status="succeeded")),
                                failed=Count("id", filter=Q(status="failed")))
    except FieldError:
        return None
    finished = counts["succeeded"] + counts["failed"]
    rate = (Decimal(counts["succeeded"]) / finished * 100).quantize(Decimal("0.1")) if finished else None
    return {"retries": finished, "recovered": counts["succeeded"], "rate": rate}


# --------------------------------------------------------------------------- renderings


def report_rows(report: MonthlyReport) -> list[list[Any]]:
    """The report as flat rows (section, label, detail, value): the CSV and the PDF tables."""
    rows: list[list[Any]] = []
    for c in report.collected:
        rows.append(["collected", c["creditor"], f"{c['method']} ({c['count']})", f"{c['amount']} {c['currency']}"])
    rows.append(["invoiced", "", report.currency, f"{report.invoiced}"])
    rows.append(["receivables", "", report.currency, f"{report.receivables}"])
    rows.append(["dso_days", "", "", "" if report.dso_days is None else f"{report.dso_days}"])
    for name, amount in report.aging.items():
        rows.append(["aging", name, report.currency, f"{amount}"])
    if report.scenarios is None:
        rows.append(["reminder_scenarios", "", "", "not available"])
    for s in report.scenarios or []:
        rows.append(["reminder_scenarios", s["scenario"], f"{s['paid']}/{s['reminded']}",
                     "" if s["rate"] is None else f"{s['rate']}%"])
    if report.retries is None:
        rows.append(["retry_recovery", "", "", "not available"])
    else:
        rows.append(["retry_recovery", "", f"{report.retries['recovered']}/{report.retries['retries']}",
                     "" if report.retries["rate"] is None else f"{report.retries['rate']}%"])
    return rows


def report_csv(report: MonthlyReport) -> bytes:
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(["section", "label", "detail", "value"])
    writer.writerows(report_rows(report))
    return out.getvalue().encode("utf-8-sig")


def bar_chart_svg(items: list[tuple[str, Decimal]], *, title: str, width: int = 520, bar_height: int = 22) -> str:
    """A horizontal bar chart as inline SVG: drawn on the server, no script, no CDN."""
    top = 28
    height = top + max(len(items), 1) * (bar_height + 8) + 8
    largest = max((value for _label, value in items), default=ZERO) or Decimal(1)
    label_w, value_w = 130, 110
    span = width - label_w - value_w
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" style="font:12px sans-serif">',
             f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_height + 8)
        w = int(span * (value / largest)) if value > 0 else 0
        parts.append(f'<text x="0" y="{y + 15}">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_height}" fill="#3b6ea5"/>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 15}">{escape(str(value))}</text>')
    if not items:
        no_data = escape(_("No data"))  # outside the f-string, where makemessages can see it
        parts.append(f'<text x="0" y="{top + 15}" fill="#777">{no_data}</text>')
    parts.append("</svg>")
    return "".join(parts)


def report_charts(report: MonthlyReport) -> dict[str, str]:
    labels = dict(Payment._meta.get_field("method").choices)
    return {
        "collected": bar_chart_svg([(str(labels.get(k, k)), v) for k, v in report.collected_by_method.items()],
                                   title=_("Collected by method (%(currency)s)") % {"currency": report.currency}),
        "aging": bar_chart_svg([(k, v) for k, v in report.aging.items()],
                               title=_("Aging balance (%(currency)s)") % {"currency": report.currency}),
    }


def report_pdf(report: MonthlyReport) -> bytes:
    from reportlab.graphics.charts.barcharts import HorizontalBarChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=f"Encaisse {report.year}-{report.month:02d}")
    styles = getSampleStyleSheet()
    who = report.creditor.name if report.creditor else _("All creditors")
    story = [Paragraph(escape(_("Monthly financial report %(month)s — %(who)s")
                              % {"month": f"{report.year}-{report.month:02d}", "who": who}), styles["Title"]),
             Spacer(1, 8)]
    for key, title in (("aging", _("Aging balance")), ("collected", _("Collected by method"))):
        items = (list(report.aging.items()) if key == "aging"
                 else list(report.collected_by_method.items()))
        if not items:
            continue
        drawing = Drawing(440, 30 + 22 * len(items))
        chart = HorizontalBarChart()
        chart.x, chart.y, chart.width, chart.height = 90, 10, 320, 20 * len(items)
        chart.data = [[float(v) for _k, v in items]]  # drawing only: the figures are in the table below
        chart.categoryAxis.categoryNames = [k for k, _v in items]
        chart.valueAxis.valueMin = 0
        chart.bars[0].fillColor = colors.HexColor("#3b6ea5")
        drawing.add(chart)
        story += [Paragraph(escape(title), styles["Heading3"]), drawing, Spacer(1, 6)]
    table = Table([["section", "label", "detail", "value"], *report_rows(report)], repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                               ("FONTSIZE", (0, 0), (-1, -1), 8)]))
    story.append(table)
    doc.build(story)
    return buffer.getvalue()
