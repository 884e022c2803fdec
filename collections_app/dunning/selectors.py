"""Reads of the dunning package: the day's plan (set-based), previews and statistics.

Planning reads open invoices in keyset batches; for each batch a fixed number of queries
(overrides, existing reminders and escalations, then one per pause provider) decides every
invoice's action in memory. Scenarios, steps and rules are loaded once: there are few of them.
"""
from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, F, OuterRef, Q

from collections_app.business_days import is_french_business_day
from collections_app.dunning.models import (
    DunningEscalation,
    DunningOverride,
    DunningRule,
    DunningScenario,
    DunningStep,
    Reminder,
)
from collections_app.dunning.pauses import paused_invoices, paused_requests
from collections_app.models import Creditor, Invoice, PaymentRequest

ZERO = Decimal("0.00")
NOTHING: frozenset[int] = frozenset()

EXCLUDED = -1


@dataclass(frozen=True)
class StepInfo:
    id: int
    offset_days: int
    channel: str
    name: str


@dataclass
class ScenarioInfo:
    id: int
    creditor_id: int
    name: str
    escalation: str
    escalation_after_days: int
    window_start: dt.time
    window_end: dt.time
    weekdays: frozenset[int]
    skip_non_business_days: bool
    steps: list[StepInfo] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # of the steps, in order: bisected per invoice

    def in_window(self, now: dt.datetime, tz_name: str) -> bool:
        local = now.astimezone(zone(tz_name))
        if local.weekday() not in self.weekdays:
            return False
        if self.skip_non_business_days and not is_french_business_day(local.date()):
            return False
        return self.window_start <= local.time().replace(tzinfo=None) < self.window_end


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Europe/Paris")
    except (KeyError, ValueError):
        return ZoneInfo("Europe/Paris")


class Action:
    SEND = "send"
    ESCALATE = "escalate"
    PAUSED = "paused"
    OUTSIDE_WINDOW = "outside_window"


@dataclass
class PlanItem:
    action: str
    invoice_id: int | None
    customer_id: int
    creditor_id: int
    scenario_id: int
    invoice_ref: str
    customer_name: str
    amount_due: Decimal
    currency: str
    step: StepInfo | None = None
    step_date: dt.date | None = None
    superseded: list[tuple[StepInfo, dt.date]] = field(default_factory=list)
    reason: str = ""
    payment_request_id: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return ("invoice", self.invoice_id) if self.invoice_id else ("payment_request", self.payment_request_id)

    def as_dict(self) -> dict:
        return {"action": self.action, "invoice_id": self.invoice_id, "payment_request_id": self.payment_request_id,
                "invoice": self.invoice_ref,
                "customer": self.customer_name, "scenario_id": self.scenario_id,
                "step_id": self.step.id if self.step else None,
                "step_offset_days": self.step.offset_days if self.step else None,
                "channel": self.step.channel if self.step else None, "step_date": self.step_date,
                "amount_due": self.amount_due, "currency": self.currency,
                "skipped_steps": [s.id for s, _d in self.superseded], "reason": self.reason}


def scenarios_load(*, creditor_id: int | None = None) -> dict[int, ScenarioInfo]:
    qs = DunningScenario.objects.filter(is_active=True, creditor__is_active=True)
    if creditor_id:
        qs = qs.filter(creditor_id=creditor_id)
    scenarios = {
        s.pk: ScenarioInfo(id=s.pk, creditor_id=s.creditor_id, name=s.name, escalation=s.escalation,
                           escalation_after_days=s.escalation_after_days, window_start=s.window_start,
                           window_end=s.window_end, weekdays=frozenset(int(d) for d in s.weekdays or []),
                           skip_non_business_days=s.skip_non_business_days)
        for s in qs
    }
    for step in DunningStep.objects.filter(scenario_id__in=list(scenarios)).order_by("offset_days"):
        scenarios[step.scenario_id].steps.append(
            StepInfo(id=step.pk, offset_days=step.offset_days, channel=step.channel, name=step.name))
    for scenario in scenarios.values():
        scenario.offsets = [step.offset_days for step in scenario.steps]
    return {k: v for k, v in scenarios.items() if v.steps}


class Assigner:
    """Which scenario an invoice follows: invoice override, customer override, the first
    matching rule, the creditor's default scenario — or none (excluded)."""

    def __init__(self, scenarios: dict[int, ScenarioInfo]):
        self.scenarios = scenarios
        self.rules: dict[int, list[DunningRule]] = defaultdict(list)
        for rule in DunningRule.objects.filter(scenario_id__in=list(scenarios)).order_by("priority", "id"):
            self.rules[rule.creditor_id].append(rule)
        self.defaults = dict(DunningScenario.objects.filter(is_default=True, pk__in=list(scenarios))
                             .values_list("creditor_id", "pk"))

    def resolve(self, *, creditor_id: int, tags: list[str], amount: Decimal,
                invoice_override: tuple[int | None, bool] | None,
                customer_override: tuple[int | None, bool] | None) -> int | None:
        for override in (invoice_override, customer_override):
            if override is not None:
                scenario_id, excluded = override
                if excluded:
                    return None
                return scenario_id if scenario_id in self.scenarios else None
        for rule in self.rules.get(creditor_id, ()):
            if rule.matches(tags=tags, amount=amount):
                return rule.scenario_id
        return self.defaults.get(creditor_id)


INVOICE_FIELDS = ("id", "customer_id", "creditor_id", "due_date", "amount_total", "amount_paid",
                  "amount_written_off", "currency", "external_ref", "customer__tags", "customer__time_zone",
                  "customer__name")


REQUEST_FIELDS = ("id", "customer_id", "creditor_id", "created_at", "amount", "amount_paid", "currency",
                  "reference", "customer__tags", "customer__time_zone", "customer__name")


def dunning_plan(*, today: dt.date, now: dt.datetime, creditor_id: int | None = None,
                 scenario_id: int | None = None, invoice_ids: list[int] | None = None,
                 batch_size: int = 5000, check_window: bool = True,
                 preview_days: int = 0) -> Iterator[list[PlanItem]]:
    """Yield, batch after batch, what today's run has to do for every open invoice (then every
    open payment request without invoices) that needs something: send a step, escalate, or
    nothing yet because it is paused or outside its window."""
    scenarios = scenarios_load(creditor_id=creditor_id)
    if not scenarios:
        return
    assigner = Assigner(scenarios)
    min_offset = min(min(s.offsets) for s in scenarios.values())
    horizon = today + dt.timedelta(days=preview_days - min_offset)
    qs = Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES, creditor__is_active=True, due_date__lte=horizon)
    if creditor_id:
        qs = qs.filter(creditor_id=creditor_id)
    if invoice_ids is not None:
        qs = qs.filter(pk__any_of=invoice_ids)
    options = dict(today=today, now=now, scenarios=scenarios, assigner=assigner, only_scenario=scenario_id,
                   check_window=check_window, preview_days=preview_days)
    for rows in _keyset(qs, INVOICE_FIELDS, batch_size):
        items = _plan_batch(rows, kind="invoice", **options)
        if items:
            yield items
    if invoice_ids is not None:
        return
    # A request's "due date" is its creation day: created before the end of the horizon day.
    requests = (PaymentRequest.objects.filter(status__in=PaymentRequest.OPEN_STATUSES, creditor__is_active=True,
                                              created_at__lt=dt.datetime.combine(horizon + dt.timedelta(days=2),
                                                                                 dt.time(), tzinfo=dt.timezone.utc))
                .filter(~Exists(PaymentRequest.invoices.through.objects.filter(paymentrequest_id=OuterRef("pk")))))
    if creditor_id:
        requests = requests.filter(creditor_id=creditor_id)
    for rows in _keyset(requests, REQUEST_FIELDS, batch_size):
        rows = [(pk, cust, cred, created.astimezone(zone(tz)).date(), amount, paid, ZERO, currency, ref, tags, tz,
                 name) for pk, cust, cred, created, amount, paid, currency, ref, tags, tz, name in rows]
        items = _plan_batch(rows, kind="payment_request", **options)
        if items:
            yield items


def _keyset(qs, fields, batch_size):
    last_id = 0
    while True:
        rows = list(qs.filter(pk__gt=last_id).order_by("pk").values_list(*fields)[:batch_size])
        if not rows:
            return
        last_id = rows[-1][0]
        yield rows
        if len(rows) < batch_size:
            return


def _plan_batch(rows, *, kind, today, now, scenarios, assigner, only_scenario, check_window,
                preview_days=0) -> list[PlanItem]:
    ids = [r[0] for r in rows]
    customer_ids = {r[1] for r in rows}
    own_over: dict[int, tuple[int | None, bool]] = {}
    cust_over: dict[int, tuple[int | None, bool]] = {}
    over_filter = Q(customer_id__any_of=list(customer_ids))
    if kind == "invoice":
        over_filter |= Q(invoice_id__any_of=ids)
    for inv_id, cust_id, scen_id, excluded in DunningOverride.objects.filter(over_filter).values_list(
            "invoice_id", "customer_id", "scenario_id", "excluded"):
        if inv_id:
            own_over[inv_id] = (scen_id, excluded)
        else:
            cust_over[cust_id] = (scen_id, excluded)
    column = "invoice_id" if kind == "invoice" else "payment_request_id"
    done: dict[int, set[int]] = defaultdict(set)
    for own_id, step_id in Reminder.objects.filter(**{f"{column}__any_of": ids}).values_list(column, "step_id"):
        done[own_id].add(step_id)
    escalated = set(DunningEscalation.objects.filter(**{f"{column}__any_of": ids})
                    .values_list(column, "scenario_id"))

    candidates: list[tuple[PlanItem, str]] = []
    for (own_id, cust_id, cred_id, due_date, total, paid, written_off, currency, ref, tags, tz,
         cust_name) in rows:
        sid = assigner.resolve(creditor_id=cred_id, tags=tags or [], amount=total,
                               invoice_override=own_over.get(own_id), customer_override=cust_over.get(cust_id))
        if sid is None or (only_scenario and sid != only_scenario):
            continue
        scenario = scenarios[sid]
        days = (today - due_date).days
        index = bisect.bisect_right(scenario.offsets, days) - 1
        if index < 0 and not preview_days:
            continue
        steps_done = done.get(own_id, NOTHING)
        handled = index >= 0 and any(s.id in steps_done for s in scenario.steps[index:])
        escalate = False
        if handled:
            last = scenario.steps[-1]
            escalate = (last.id in steps_done and (own_id, sid) not in escalated
                        and days >= last.offset_days + scenario.escalation_after_days)
            if not escalate and not preview_days:
                continue  # the common case of a busy day: this step is done, nothing more yet
        common = dict(invoice_id=own_id if kind == "invoice" else None,
                      payment_request_id=own_id if kind != "invoice" else None, customer_id=cust_id,
                      creditor_id=cred_id, scenario_id=sid, invoice_ref=ref, customer_name=cust_name,
                      amount_due=total - paid - written_off, currency=currency)
        if escalate:
            candidates.append((PlanItem(**common, action=Action.ESCALATE, reason=scenario.escalation), tz))
        elif index >= 0 and not handled:
            step = scenario.steps[index]
            candidates.append((PlanItem(
                **common, action=Action.SEND, step=step, step_date=due_date + dt.timedelta(days=step.offset_days),
                superseded=[(s, due_date + dt.timedelta(days=s.offset_days))
                            for s in scenario.steps[:index] if s.id not in steps_done]), tz))
        # A preview also lists the steps whose day comes within the next preview_days.
        for step in scenario.steps[index + 1:] if preview_days else ():
            step_date = due_date + dt.timedelta(days=step.offset_days)
            if step_date > today + dt.timedelta(days=preview_days):
                break
            if step.id not in steps_done:
                candidates.append((PlanItem(**common, action=Action.SEND, step=step, step_date=step_date,
                                            reason="upcoming"), tz))
    if not candidates:
        return []
    candidate_ids = [c.key[1] for c, _tz in candidates]
    paused = (paused_invoices(candidate_ids, today) if kind == "invoice"
              else paused_requests(candidate_ids, today))
    items = []
    for item, tz in candidates:
        if item.key[1] in paused:
            item.action, item.reason = Action.PAUSED, paused[item.key[1]]
        elif (item.action == Action.SEND and check_window
              and not scenarios[item.scenario_id].in_window(now, tz)):
            item.action, item.reason = Action.OUTSIDE_WINDOW, "outside_send_window"
        items.append(item)
    return items


def dunning_preview(*, today: dt.date, days: int = 7, scenario_id: int | None = None,
                    creditor_id: int | None = None, limit: int = 100) -> list[dict]:
    """The reminders the next runs would send from today to today + days, given what has been
    sent so far, in one pass over the open invoices (send windows ignored: a step goes out during
    its day's window). Stops at the first `limit` found, then sorts them by date."""
    from django.utils import timezone

    out: list[dict] = []
    for batch in dunning_plan(today=today, now=timezone.now(), creditor_id=creditor_id, scenario_id=scenario_id,
                              check_window=False, preview_days=days):
        for item in batch:
            if item.step is None:
                continue
            out.append({**item.as_dict(), "date": max(item.step_date, today)})
        if len(out) >= limit:
            break
    return sorted(out, key=lambda i: (i["date"], i["invoice"]))[:limit]


def scenario_statistics(*, scenario: DunningScenario, paid_within_days: int | None = None) -> list[dict]:
    """Per step: reminders sent, skipped, failed, and how many of the sent ones were followed by
    full payment within N days. One aggregate query."""
    days = paid_within_days if paid_within_days is not None else scenario.paid_within_days
    window = dt.timedelta(days=days)
    rows = (Reminder.objects.filter(scenario=scenario)
            .values("step_id")
            .annotate(sent=Count("pk", filter=Q(status=Reminder.Status.SENT)),
                      skipped=Count("pk", filter=Q(status=Reminder.Status.SKIPPED)),
                      failed=Count("pk", filter=Q(status__in=[Reminder.Status.FAILED, Reminder.Status.UNKNOWN])),
                      paid_after=Count("pk", filter=Q(status=Reminder.Status.SENT) & (
                          Q(invoice__paid_at__gte=F("sent_at"), invoice__paid_at__lte=F("sent_at") + window)
                          | Q(payment_request__paid_at__gte=F("sent_at"),
                              payment_request__paid_at__lte=F("sent_at") + window)))))
    by_step = {r["step_id"]: r for r in rows}
    out = []
    for step in scenario.steps.order_by("offset_days"):
        r = by_step.get(step.pk, {})
        sent = r.get("sent", 0)
        paid = r.get("paid_after", 0)
        out.append({"step_id": step.pk, "step": step.name or f"J{step.offset_days:+d}",
                    "offset_days": step.offset_days, "channel": step.channel, "sent": sent,
                    "skipped": r.get("skipped", 0), "failed": r.get("failed", 0), "paid_within_days": days,
                    "paid_after": paid, "paid_rate": round(paid / sent, 3) if sent else None})
    return out


def invoice_reminders(*, invoice: Invoice):
    return Reminder.objects.filter(invoice=invoice).select_related("step", "scenario").order_by("step_date", "id")


def creditor_default_scenario(*, creditor: Creditor) -> DunningScenario | None:
    return DunningScenario.objects.filter(creditor=creditor, is_default=True, is_active=True).first()

